package otel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Thousands of requests with distinct Host, User-Agent, path, query,
// X-Forwarded-For and client addresses, and odd methods, through otelhttp on
// Setup's meter provider: the otelhttp instruments keep a fixed number of
// series, none of them or their exemplars carries a value a client sent,
// and the Prometheus exposition stops growing once every closed-set
// combination has been seen. qwend's own instruments keep their attributes.
func TestHTTPMetricsIgnoreClientValues(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	reg := promclient.NewRegistry()
	promReader, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := newMeterProvider(resource.Empty(), reader, promReader)
	defer mp.Shutdown(ctx)
	// every request's span is sampled, so the histograms record exemplars
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(ctx)

	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD", "get", "BREW", "PROPFIND", "M-SEARCH", "X"}
	statuses := []int{http.StatusOK, http.StatusNotFound}
	// the series that can exist: otelhttp's known methods among those sent,
	// "_OTHER" for the rest, by status
	const maxSeries = 6 * 2
	h := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(statuses[len(r.URL.Path)%2])
		io.WriteString(w, "ok")
	}), "GET /healthz", otelhttp.WithMeterProvider(mp), otelhttp.WithTracerProvider(tp))

	sent := map[string]bool{}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			host := fmt.Sprintf("h%d.example.com:%d", i, 1024+i)
			ua := fmt.Sprintf("agent-%d/1.0", i)
			xff := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
			path := fmt.Sprintf("/healthz/%d", i)
			req := httptest.NewRequest(methods[i%len(methods)], path+fmt.Sprintf("?q=%d", i), strings.NewReader("body"))
			req.Host = host
			req.Header.Set("User-Agent", ua)
			req.Header.Set("X-Forwarded-For", xff)
			req.RemoteAddr = fmt.Sprintf("192.0.2.%d:%d", i%250, 2000+i)
			for _, v := range []string{host, strings.Split(host, ":")[0], fmt.Sprint(1024 + i), ua, xff, path, req.RemoteAddr} {
				sent[v] = true
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	exposition := func() string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}).ServeHTTP(rec, req)
		return rec.Body.String()
	}

	// qwend's own instruments: their attributes stay, server.address included
	own, err := mp.Meter("github.com/qwend/qwend").Int64Counter(MetricRequests)
	if err != nil {
		t.Fatal(err)
	}
	ownAttrs := attribute.NewSet(attribute.String(AttrOperation, "chat"), attribute.String(AttrStatus, "error"),
		attribute.String(AttrErrorType, "timeout"), attribute.String("server.address", "kept.example"))
	own.Add(ctx, 1, metric.WithAttributeSet(ownAttrs))

	send(0, 200)
	first := exposition()
	send(200, 5000)
	last := exposition()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	instruments, exemplars, ownSeen := 0, 0, false
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelhttp.ScopeName {
			for _, m := range sm.Metrics {
				if m.Name != MetricRequests {
					continue
				}
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					ownSeen = ownSeen || dp.Attributes.Equals(&ownAttrs)
				}
			}
			continue
		}
		for _, m := range sm.Metrics {
			instruments++
			var sets []attribute.Set
			var filtered [][]attribute.KeyValue
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					sets = append(sets, dp.Attributes)
					for _, ex := range dp.Exemplars {
						filtered = append(filtered, ex.FilteredAttributes)
					}
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					sets = append(sets, dp.Attributes)
					for _, ex := range dp.Exemplars {
						filtered = append(filtered, ex.FilteredAttributes)
					}
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					sets = append(sets, dp.Attributes)
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			if len(sets) == 0 || len(sets) > maxSeries {
				t.Errorf("%s: %d series after 5000 requests, want 1 to %d", m.Name, len(sets), maxSeries)
			}
			for _, set := range sets {
				for _, kv := range set.ToSlice() {
					if !slices.Contains(HTTPMetricAttributes, kv.Key) {
						t.Fatalf("%s: attribute %s=%s is not in HTTPMetricAttributes", m.Name, kv.Key, kv.Value.Emit())
					}
					if sent[kv.Value.Emit()] {
						t.Fatalf("%s: attribute %s=%q was sent by a client", m.Name, kv.Key, kv.Value.Emit())
					}
				}
			}
			for _, f := range filtered {
				exemplars++
				if len(f) != 0 {
					t.Fatalf("%s: an exemplar carries the dropped attributes %v", m.Name, f)
				}
			}
		}
	}
	if instruments < 3 {
		t.Errorf("%d otelhttp instruments collected, want the 3 of the server", instruments)
	}
	if exemplars == 0 {
		t.Error("no exemplars recorded: their check above checked nothing")
	}
	if !ownSeen {
		t.Errorf("qwend's %s lost attributes to the view", MetricRequests)
	}

	// the exposition: no client value, and no more lines after 5000
	// requests than after the first 200, which covered every combination
	t.Logf("exposition: %d bytes after 200 requests, %d after 5000", len(first), len(last))
	if n1, n2 := strings.Count(first, "\n"), strings.Count(last, "\n"); n1 != n2 {
		t.Errorf("exposition grew from %d lines (%d bytes) after 200 requests to %d (%d bytes) after 5000", n1, len(first), n2, len(last))
	}
	if len(last) > 1<<20 { // 40 MB without the view
		t.Errorf("exposition is %d bytes", len(last))
	}
	for _, probe := range []string{".example.com", "agent-", "192.0.2.", "/healthz/", "10.0."} {
		if strings.Contains(last, probe) {
			t.Errorf("exposition contains %q, which only clients sent", probe)
		}
	}
	if !strings.Contains(last, "http_server_request_duration_seconds_bucket") || !strings.Contains(last, `server_address="kept.example"`) {
		t.Errorf("exposition lacks the otelhttp histogram or qwend's own counter:\n%.2000s", last)
	}
}
