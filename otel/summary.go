package otel

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/gpu"
	"github.com/qwend/qwend/quality"
)

// Summary aggregates inferences for the JSON /metrics payload. Latency and
// throughput statistics cover successful requests; quantiles come from a
// DDSketch with 1% relative accuracy.
type Summary struct {
	mu              sync.Mutex
	requests        int64
	errors          int64
	errorsByType    map[string]int64
	tokensGenerated int64
	promptTokens    int64
	cachedTokens    int64
	latencySumMS    float64
	tpsSum          float64
	successes       int64
	latency         *ddsketch.DDSketch
	last            time.Time
	costMicroUSD    int64
	feedback        map[string]int64 // by label: up, down
}

// NewSummary returns an empty summary.
func NewSummary() *Summary {
	sk, err := ddsketch.NewDefaultDDSketch(0.01)
	if err != nil { // only for an accuracy outside (0, 1)
		panic(err)
	}
	return &Summary{latency: sk, errorsByType: map[string]int64{}, feedback: map[string]int64{}}
}

func (s *Summary) add(rec *api.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &rec.Result
	s.requests++
	s.costMicroUSD += rec.CostMicroUSD
	if !res.Admitted.IsZero() { // a refused request processed no tokens
		s.tokensGenerated += int64(res.OutputTokens)
		s.promptTokens += int64(res.PromptTokens)
		s.cachedTokens += int64(res.CachedTokens)
	}
	if !rec.Finished.IsZero() {
		s.last = rec.Finished
	}
	if !rec.Succeeded() {
		s.errors++
		s.errorsByType[rec.ErrorType]++
		return
	}
	ms := float64(rec.Duration().Microseconds()) / 1000
	s.successes++
	s.latencySumMS += ms
	s.tpsSum += tokensPerSecond(res.OutputTokens, rec.Duration().Seconds())
	_ = s.latency.Add(ms)
}

func (s *Summary) addFeedback(label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.feedback[label]++
}

func (s *Summary) prefixHitRatio() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.promptTokens == 0 {
		return 0
	}
	return float64(s.cachedTokens) / float64(s.promptTokens)
}

// SummaryJSON is the /metrics JSON payload.
type SummaryJSON struct {
	RequestsTotal          int64            `json:"requests_total"`
	ErrorsTotal            int64            `json:"errors_total"`
	ErrorsByType           map[string]int64 `json:"errors_by_type"`
	TokensGeneratedTotal   int64            `json:"tokens_generated_total"`
	PromptTokensTotal      int64            `json:"prompt_tokens_total"`
	CachedTokensTotal      int64            `json:"cached_tokens_total"`
	AverageLatencyMS       float64          `json:"average_latency_ms"`
	P50LatencyMS           float64          `json:"p50_latency_ms"`
	P95LatencyMS           float64          `json:"p95_latency_ms"`
	P99LatencyMS           float64          `json:"p99_latency_ms"`
	AverageTokensPerSecond float64          `json:"average_tokens_per_second"`
	LastRequestAt          *string          `json:"last_request_at"`
	TelemetryExportErrors  int64            `json:"telemetry_export_errors_total"`
	CostUSDTotal           float64          `json:"cost_usd_total"`          // since start, under the --prices table
	FeedbackTotal          int64            `json:"feedback_total"`          // feedback given since start
	FeedbackNegativeRatio  float64          `json:"feedback_negative_ratio"` // down / all feedback since start; 0 without any
	Engine                 *engine.Stats    `json:"engine,omitempty"`
	GPU                    gpu.Snapshot     `json:"gpu"`

	// Drift is the drift monitor's comparison, when the daemon has one.
	Drift *quality.DriftReport `json:"drift,omitempty"`
}

// Snapshot returns the payload (without GPU, engine and export fields).
func (s *Summary) Snapshot() SummaryJSON {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := SummaryJSON{
		RequestsTotal: s.requests, ErrorsTotal: s.errors, ErrorsByType: map[string]int64{},
		TokensGeneratedTotal: s.tokensGenerated, PromptTokensTotal: s.promptTokens, CachedTokensTotal: s.cachedTokens,
	}
	for k, v := range s.errorsByType {
		out.ErrorsByType[k] = v
	}
	out.CostUSDTotal = float64(s.costMicroUSD) / 1e6
	out.FeedbackTotal = s.feedback["up"] + s.feedback["down"]
	if out.FeedbackTotal > 0 {
		out.FeedbackNegativeRatio = round3(float64(s.feedback["down"]) / float64(out.FeedbackTotal))
	}
	if s.successes > 0 {
		out.AverageLatencyMS = round3(s.latencySumMS / float64(s.successes))
		out.AverageTokensPerSecond = round3(s.tpsSum / float64(s.successes))
		q, _ := s.latency.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99})
		out.P50LatencyMS, out.P95LatencyMS, out.P99LatencyMS = round3(q[0]), round3(q[1]), round3(q[2])
	}
	if !s.last.IsZero() {
		t := s.last.UTC().Format(time.RFC3339Nano)
		out.LastRequestAt = &t
	}
	return out
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// MetricsHandler serves /metrics: the JSON summary by default, and the
// Prometheus text or OpenMetrics exposition of the OTel instruments when the
// client asks for it (as Prometheus does in its Accept header).
func MetricsHandler(p *Providers, o *Observer, eng EngineStats, gpus GPUSource) http.Handler {
	var prom http.Handler
	if p != nil && p.Registry != nil {
		prom = promhttp.HandlerFor(p.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept := r.Header.Get("Accept")
		if strings.Contains(accept, "text/plain") || strings.Contains(accept, "application/openmetrics-text") {
			if prom == nil {
				http.Error(w, "the Prometheus exposition needs telemetry on (--otel=on)", http.StatusNotAcceptable)
				return
			}
			prom.ServeHTTP(w, r)
			return
		}
		out := o.Summary().Snapshot()
		if p != nil {
			out.TelemetryExportErrors = p.ExportErrors()
		}
		if eng != nil {
			st := eng.Stats()
			out.Engine = &st
		}
		if o.drift != nil {
			d := o.drift.Report()
			out.Drift = &d
		}
		out.GPU = gpu.Snapshot{Devices: []gpu.Device{}}
		if gpus != nil {
			out.GPU = gpus.Cached()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
