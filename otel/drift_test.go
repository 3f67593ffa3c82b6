package otel

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/quality"
)

// With a drift monitor, every record reaches it, /metrics JSON carries its
// drift block and the qwend.drift.* gauges are collected with the rest.
func TestObserverDrift(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	drift := quality.NewDriftMonitor(quality.DriftConfig{Model: "tiny", MinRequests: 1})
	obs, err := NewObserver(ObserverConfig{Model: "tiny", Meter: mp, GPUs: fixedGPU{}, Drift: drift})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	now := time.Now()
	for i := range 3 {
		obs.Record(context.Background(), &api.Record{Endpoint: "POST /v1/x", Operation: engine.OperationChat, Model: "tiny", Status: 200,
			Started: now.Add(-time.Second), Finished: now, Result: engine.Result{Enqueued: now.Add(-time.Second), Admitted: now.Add(-time.Second),
				FirstToken: now.Add(-time.Second / 2), Finished: now, PromptTokens: 10, OutputTokens: 5 + i}})
	}

	w := httptest.NewRecorder()
	MetricsHandler(nil, obs, nil, nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	var got struct {
		Drift *quality.DriftReport `json:"drift"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Drift == nil || got.Drift.RecentRequests != 3 || got.Drift.RecentWindow != "1h0m0s" || got.Drift.Status != "insufficient_data" {
		t.Errorf("drift block %+v in %s", got.Drift, w.Body.String())
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == quality.MetricDriftRequests {
				for _, p := range m.Data.(metricdata.Gauge[float64]).DataPoints {
					if w, _ := p.Attributes.Value(quality.AttrWindow); w.AsString() == "recent" && p.Value == 3 {
						found = true
					}
				}
			}
		}
	}
	if !found {
		t.Error("no qwend.drift.requests{window=recent} = 3 among the collected metrics")
	}

	// without a monitor, no drift block
	plain, err := NewObserver(ObserverConfig{Model: "tiny", Meter: sdkmetric.NewMeterProvider(), GPUs: fixedGPU{}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	w = httptest.NewRecorder()
	MetricsHandler(nil, plain, nil, nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["drift"]; ok {
		t.Error("a drift block without a monitor")
	}
}
