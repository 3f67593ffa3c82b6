package quality

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// PSI against figures worked by hand: sum of (a - e) ln(a / e).
func TestPSI(t *testing.T) {
	for _, c := range []struct {
		recent, expected []int64
		want             float64
	}{
		{[]int64{90, 10}, []int64{90, 10}, 0},
		{[]int64{9, 1}, []int64{900, 100}, 0},                                             // shares, not counts
		{[]int64{80, 20}, []int64{90, 10}, -0.1*math.Log(0.8/0.9) + 0.1*math.Log(2)},      // 0.0811
		{[]int64{75, 25}, []int64{90, 10}, -0.15*math.Log(0.75/0.9) + 0.15*math.Log(2.5)}, // 0.1648
		{[]int64{50, 50}, []int64{90, 10}, -0.4*math.Log(0.5/0.9) + 0.4*math.Log(5)},      // 0.8789
		// an empty bin counts as a share of 1e-4
		{[]int64{100, 0}, []int64{50, 50}, 0.5*math.Log(2) + (1e-4-0.5)*math.Log(1e-4/0.5)},
		{[]int64{}, []int64{1}, 0},
	} {
		if got := PSI(c.recent, c.expected); !near(got, c.want, 1e-9) {
			t.Errorf("PSI(%v, %v) = %v, want %v", c.recent, c.expected, got, c.want)
		}
	}
}

// fakeClock is a settable time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// feed adds n answered requests spread over the span before clock's now,
// the i-th with what sample makes of it.
func feed(m *DriftMonitor, clock *fakeClock, span time.Duration, n int, sample func(i int) DriftSample) {
	start := clock.Now().Add(-span)
	for i := range n {
		s := sample(i)
		s.Time = start.Add(time.Duration(i) * span / time.Duration(n))
		m.Observe(s)
	}
}

func answered(out, prompt int, latency time.Duration) DriftSample {
	return DriftSample{Answered: true, OutputTokens: out, PromptTokens: prompt, Latency: latency,
		TimeToFirstToken: 50 * time.Millisecond, TokensPerSecond: float64(out) / latency.Seconds()}
}

func newTestMonitor(clock *fakeClock) *DriftMonitor {
	return NewDriftMonitor(DriftConfig{Recent: time.Hour, Baseline: 24 * time.Hour, MinRequests: 50, Now: clock.Now})
}

// The monitor's figures for distributions whose PSI and ratios are known:
// output lengths 90/10 across two bins in the baseline and 50/50 in the
// recent hour, latency doubled, errors and cut answers up.
func TestDriftMonitorFigures(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	m := newTestMonitor(clock)
	// baseline: the 24 hours before the last hour
	clock.Add(-time.Hour)
	feed(m, clock, 20*time.Hour, 1000, func(i int) DriftSample {
		out := 10 // bin 8-15
		if i%10 == 0 {
			out = 100 // bin 64-127
		}
		s := answered(out, 300, 100*time.Millisecond)
		s.LengthCut = i%50 == 0 // 2%
		return s
	})
	clock.Add(time.Hour)
	if r := m.Report(); r.Status != "insufficient_data" || r.BaselineRequests != 1000 || r.RecentRequests != 0 {
		t.Fatalf("before any recent request: %+v", r)
	}
	feed(m, clock, 50*time.Minute, 200, func(i int) DriftSample {
		if i >= 180 { // 10% errors
			return DriftSample{Error: true}
		}
		out := 10
		if i%2 == 0 {
			out = 100
		}
		s := answered(out, 300, 200*time.Millisecond)
		s.LengthCut = out == 100 // half
		return s
	})
	r := m.Report()
	if r.RecentRequests != 200 || r.BaselineRequests != 1000 || r.Status != "act" {
		t.Fatalf("report %+v", r)
	}
	// recent answered: 180, half of them long
	if want := -0.4*math.Log(0.5/0.9) + 0.4*math.Log(5); !near(r.PSI[SignalOutputTokens], want, 1e-4) {
		t.Errorf("output PSI %v, want %v", r.PSI[SignalOutputTokens], want)
	}
	if r.PSI[SignalPromptTokens] != 0 {
		t.Errorf("prompt PSI %v, want 0 (the same lengths)", r.PSI[SignalPromptTokens])
	}
	for _, s := range []string{SignalLatencyP50, SignalLatencyP95} {
		if !near(r.Ratio[s], 2, 0.04) {
			t.Errorf("%s ratio %v, want 2 (within the sketch's 1%% per quantile)", s, r.Ratio[s])
		}
	}
	if r.Ratio[SignalTTFTP50] != 1 {
		t.Errorf("TTFT ratio %v, want 1", r.Ratio[SignalTTFTP50])
	}
	if s := r.Share[SignalError]; s.Recent != 0.1 || s.Baseline != 0 {
		t.Errorf("error share %+v", s)
	}
	if s := r.Share[SignalLengthCut]; s.Recent != 0.5 || s.Baseline != 0.02 {
		t.Errorf("length-cut share %+v", s)
	}
	flagged := map[string]string{}
	for _, f := range r.Flags {
		flagged[f.Signal] = f.Level
	}
	for _, s := range []string{SignalOutputTokens, SignalLatencyP50, SignalLatencyP95, SignalError, SignalLengthCut} {
		if flagged[s] != "act" {
			t.Errorf("%s not flagged: %v", s, r.Flags)
		}
	}
	for _, s := range []string{SignalPromptTokens, SignalTTFTP50, SignalTTFTP95} {
		if _, ok := flagged[s]; ok {
			t.Errorf("%s flagged: %v", s, r.Flags)
		}
	}
	// throughput halved: 100 tokens in 200 ms against 100 in 100 ms, the
	// p95 of both the long answers
	if !near(r.Ratio[SignalTPSP95], 0.5, 0.01) || flagged[SignalTPSP95] != "act" {
		t.Errorf("tokens/s p95 ratio %v (%v)", r.Ratio[SignalTPSP95], flagged[SignalTPSP95])
	}
}

// PSI between the thresholds is "watch", under them nothing; the windows
// slide: an hour later the recent requests are the baseline.
func TestDriftMonitorLevelsAndSliding(t *testing.T) {
	for _, c := range []struct {
		longEvery int // one recent answer in this many is long
		status    string
	}{
		{4, "watch"}, // 75/25 against 90/10: PSI 0.165
		{5, "ok"},    // 80/20: PSI 0.081
	} {
		clock := &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
		m := newTestMonitor(clock)
		clock.Add(-3 * time.Hour)
		feed(m, clock, 10*time.Hour, 100, func(i int) DriftSample {
			if i%10 == 0 {
				return answered(100, 300, 100*time.Millisecond)
			}
			return answered(10, 300, 100*time.Millisecond)
		})
		clock.Add(3 * time.Hour)
		feed(m, clock, 30*time.Minute, 100, func(i int) DriftSample {
			if i%c.longEvery == 0 {
				return answered(100, 300, 100*time.Millisecond)
			}
			return answered(10, 300, 100*time.Millisecond)
		})
		r := m.Report()
		if r.Status != c.status {
			t.Errorf("one in %d long: status %s (PSI %v, flags %v), want %s", c.longEvery, r.Status, r.PSI, r.Flags, c.status)
		}

		// 23 hours later: the recent requests are in the baseline window,
		// the older ones out of it, the recent window is empty
		clock.Add(23 * time.Hour)
		if r := m.Report(); r.RecentRequests != 0 || r.BaselineRequests != 100 || r.Status != "insufficient_data" {
			t.Errorf("a day later: recent %d, baseline %d, %s", r.RecentRequests, r.BaselineRequests, r.Status)
		}
		// and after both windows, nothing
		clock.Add(2 * time.Hour)
		if r := m.Report(); r.RecentRequests != 0 || r.BaselineRequests != 0 {
			t.Errorf("after both windows: recent %d, baseline %d", r.RecentRequests, r.BaselineRequests)
		}
	}
}

// Requests become samples as the /metrics JSON counts them, except
// refusals by policy.
func TestDriftRecord(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	m := NewDriftMonitor(DriftConfig{MinRequests: 1, Now: clock.Now})
	t0 := clock.Now().Add(-time.Minute)
	ok := &api.Record{Started: t0, Finished: t0.Add(2 * time.Second), Result: engine.Result{
		Enqueued: t0, Admitted: t0, FirstToken: t0.Add(500 * time.Millisecond), Finished: t0.Add(2 * time.Second),
		PromptTokens: 20, OutputTokens: 40, FinishReason: engine.FinishLength}}
	m.Record(context.Background(), ok)
	m.Record(context.Background(), &api.Record{Started: t0, Finished: t0, Status: 429, ErrorType: api.KindBudget})
	m.Record(context.Background(), &api.Record{Started: t0, Finished: t0, Status: 401, ErrorType: api.KindUnauthorized})
	m.Record(context.Background(), &api.Record{Started: t0, Finished: t0.Add(time.Second), Status: 504, ErrorType: api.KindTimeout, Err: errors.New("timeout")})
	w := m.Window(true)
	if w.Requests != 2 || w.Errors != 1 || w.Answered != 1 || w.LengthCut != 1 {
		t.Fatalf("window %+v", w)
	}
	if w.OutputTokens[tokenBin(40)] != 1 || w.PromptTokens[tokenBin(20)] != 1 {
		t.Errorf("token bins %v %v", w.OutputTokens, w.PromptTokens)
	}
	if got := w.TPS.quantile(0.5); !near(got, 20, 0.2) {
		t.Errorf("tokens/s %v, want 20", got)
	}
	if got := w.TTFTMS.quantile(0.5); !near(got, 500, 5) {
		t.Errorf("TTFT %v ms, want 500", got)
	}
}

// The history survives a restart through the state file, and a snapshot
// pins a baseline.
func TestDriftStateAndPinnedBaseline(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	m := newTestMonitor(clock)
	clock.Add(-time.Hour)
	feed(m, clock, 5*time.Hour, 200, func(int) DriftSample { return answered(10, 300, 100*time.Millisecond) })
	clock.Add(time.Hour)
	feed(m, clock, 30*time.Minute, 100, func(int) DriftSample { return answered(100, 300, 100*time.Millisecond) })
	before := m.Report()

	path := filepath.Join(t.TempDir(), "drift.json")
	if err := m.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	restarted := newTestMonitor(clock)
	if err := restarted.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	after := restarted.Report()
	if after.Status != before.Status || after.PSI[SignalOutputTokens] != before.PSI[SignalOutputTokens] ||
		after.BaselineRequests != 200 || after.RecentRequests != 100 {
		t.Errorf("after a restart %+v, before %+v", after, before)
	}
	if err := restarted.LoadFile(filepath.Join(t.TempDir(), "none.json")); err != nil {
		t.Errorf("a missing state file: %v", err)
	}
	other := NewDriftMonitor(DriftConfig{Recent: time.Minute, Now: clock.Now})
	if err := other.LoadFile(path); err == nil || !strings.Contains(err.Error(), "resolution") {
		t.Errorf("another resolution: %v", err)
	}

	// pin the recent window (all long answers) as the baseline: now the
	// recent window matches it
	snap := filepath.Join(t.TempDir(), "baseline.json")
	if err := WriteWindowFile(snap, m.Window(true)); err != nil {
		t.Fatal(err)
	}
	pinned, err := ReadWindowFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	pm := NewDriftMonitor(DriftConfig{Recent: time.Hour, MinRequests: 50, Now: clock.Now, Pinned: pinned})
	if err := pm.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	r := pm.Report()
	if r.BaselineWindow != "pinned" || r.BaselineRequests != 100 || r.PSI[SignalOutputTokens] != 0 || r.Status != "ok" {
		t.Errorf("against the pinned baseline: %+v", r)
	}
}

// The gauges carry the figures with the closed attribute set, under the
// Prometheus names the alert rules use.
func TestDriftGauges(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	m := NewDriftMonitor(DriftConfig{Model: "tiny", MinRequests: 50, Now: clock.Now})
	reader := metric.NewManualReader()
	reg := prometheus.NewRegistry()
	promReader, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := metric.NewMeterProvider(metric.WithReader(reader), metric.WithReader(promReader))
	defer mp.Shutdown(context.Background())
	r, err := m.RegisterMetrics(mp.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Unregister()

	collect := func() map[string][]metricdata.DataPoint[float64] {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string][]metricdata.DataPoint[float64]{}
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				out[mt.Name] = mt.Data.(metricdata.Gauge[float64]).DataPoints
			}
		}
		return out
	}
	got := collect()
	// without data: the status says so (-1), and nothing else is compared
	if len(got[MetricDriftRequests]) != 2 || len(got[MetricDriftPSI]) != 0 || len(got[MetricDriftStatus]) != 1 || got[MetricDriftStatus][0].Value != -1 {
		t.Fatalf("without data: %v", got)
	}

	clock.Add(-time.Hour)
	feed(m, clock, 5*time.Hour, 100, func(int) DriftSample { return answered(10, 300, 100*time.Millisecond) })
	clock.Add(time.Hour)
	feed(m, clock, 30*time.Minute, 100, func(int) DriftSample { return answered(100, 300, 300*time.Millisecond) })
	got = collect()
	signals := map[string]float64{}
	for _, p := range got[MetricDriftPSI] {
		s, _ := p.Attributes.Value(AttrSignal)
		if model, _ := p.Attributes.Value("gen_ai.request.model"); model.AsString() != "tiny" || p.Attributes.Len() != 2 {
			t.Errorf("psi attributes %v", p.Attributes.ToSlice())
		}
		signals[s.AsString()] = p.Value
	}
	if len(signals) != 2 || signals[SignalOutputTokens] < PSIAct || signals[SignalPromptTokens] != 0 {
		t.Errorf("psi %v", signals)
	}
	if len(got[MetricDriftRatio]) != 6 || len(got[MetricDriftShare]) != 4 || len(got[MetricDriftStatus]) != 1 || got[MetricDriftStatus][0].Value != 2 {
		t.Errorf("ratio %d points, share %d, status %v", len(got[MetricDriftRatio]), len(got[MetricDriftShare]), got[MetricDriftStatus])
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"qwend_drift_psi", "qwend_drift_ratio", "qwend_drift_share_ratio", "qwend_drift_requests", "qwend_drift_status"} {
		if !names[want] {
			t.Errorf("no %s in the Prometheus exposition (%v)", want, names)
		}
	}
}
