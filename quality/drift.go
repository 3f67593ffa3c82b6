package quality

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
)

// Drift signals: the values of the qwend.drift.signal attribute.
const (
	SignalOutputTokens = "output_tokens"         // output tokens per request (PSI)
	SignalPromptTokens = "prompt_tokens"         // prompt tokens per request (PSI)
	SignalLatencyP50   = "latency_p50"           // request latency, median (ratio)
	SignalLatencyP95   = "latency_p95"           // request latency, 95th percentile (ratio)
	SignalTTFTP50      = "ttft_p50"              // time to first token, median (ratio)
	SignalTTFTP95      = "ttft_p95"              // time to first token, 95th percentile (ratio)
	SignalTPSP50       = "tokens_per_second_p50" // output tokens per second of a request, median (ratio)
	SignalTPSP95       = "tokens_per_second_p95" // the same, 95th percentile (ratio)
	SignalError        = "error"                 // share of requests that failed (share)
	SignalLengthCut    = "length_cut"            // share of answers cut by max_tokens or the context (share)
)

// Thresholds of the drift flags.
const (
	PSIWatch  = 0.1  // population stability index: a shift worth watching
	PSIAct    = 0.25 // a shift to act on
	RatioLow  = 0.67 // recent over baseline below this flags
	RatioHigh = 1.5  // above this flags
	// ShareRise flags a share (errors, answers cut) that rose by more
	// than this (5 percentage points), or that doubled while above 1%.
	ShareRise = 0.05
)

// Attribute keys of the qwend.drift.* gauges: a closed set of values each
// (the signals above; recent and baseline).
const (
	AttrSignal = attribute.Key("qwend.drift.signal")
	AttrWindow = attribute.Key("qwend.drift.window")
)

// DriftConfig sets up a DriftMonitor. Zero values take the defaults.
type DriftConfig struct {
	Model      string        // gen_ai.request.model on the gauges; "" leaves it off
	Recent     time.Duration // the recent window; default 1 hour
	Baseline   time.Duration // the window before it that it is compared with; default 24 hours
	Resolution time.Duration // windows slide by this; default Recent/60
	// MinRequests is how many answered requests each window needs before
	// figures are given; default 50.
	MinRequests int
	// Pinned, when set, is the baseline instead of the rolling window (a
	// snapshot: qwend drift snapshot).
	Pinned *DriftWindow
	Now    func() time.Time // default time.Now
}

// DriftSample is what one request adds to a window.
type DriftSample struct {
	Time time.Time
	// Error: the request failed (refusals by policy, an unknown key or a
	// spent budget, are not samples at all).
	Error bool
	// Answered: the engine answered it; the fields below count only then.
	Answered         bool
	OutputTokens     int
	PromptTokens     int
	Latency          time.Duration
	TimeToFirstToken time.Duration // 0: no token came out
	TokensPerSecond  float64
	LengthCut        bool // ended by max_tokens or the context
}

// tokenBins is the number of bins of a token count histogram: 0, 1, 2-3,
// 4-7, ..., and 2^22 and over.
const tokenBins = 24

func tokenBin(n int) int {
	if n <= 0 {
		return 0
	}
	return min(bits.Len(uint(n)), tokenBins-1)
}

// Sketch is a histogram with logarithmic bins 2% wide, from which
// quantiles are read to within 1% (a DDSketch); JSON-encodable.
type Sketch struct {
	Zero int64           `json:"zero,omitempty"` // values <= 0
	Bins map[int32]int64 `json:"bins,omitempty"`
}

var sketchGamma = (1 + 0.01) / (1 - 0.01)
var sketchLogGamma = math.Log(sketchGamma)

func (s *Sketch) add(v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		s.Zero++
		return
	}
	if s.Bins == nil {
		s.Bins = map[int32]int64{}
	}
	s.Bins[int32(math.Ceil(math.Log(v)/sketchLogGamma))]++
}

func (s *Sketch) merge(o *Sketch) {
	s.Zero += o.Zero
	for k, n := range o.Bins {
		if s.Bins == nil {
			s.Bins = map[int32]int64{}
		}
		s.Bins[k] += n
	}
}

func (s *Sketch) count() int64 {
	n := s.Zero
	for _, c := range s.Bins {
		n += c
	}
	return n
}

// quantile returns the q-quantile (0 <= q <= 1); 0 when empty.
func (s *Sketch) quantile(q float64) float64 {
	n := s.count()
	if n == 0 {
		return 0
	}
	rank := int64(q * float64(n-1))
	if rank < s.Zero {
		return 0
	}
	keys := make([]int32, 0, len(s.Bins))
	for k := range s.Bins {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := s.Zero
	for _, k := range keys {
		seen += s.Bins[k]
		if seen > rank {
			return 2 * math.Pow(sketchGamma, float64(k)) / (sketchGamma + 1)
		}
	}
	return 2 * math.Pow(sketchGamma, float64(keys[len(keys)-1])) / (sketchGamma + 1)
}

// DriftWindow is the aggregate of the requests in a span of time.
type DriftWindow struct {
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	Answered     int64     `json:"answered"`
	LengthCut    int64     `json:"length_cut"`
	OutputTokens []int64   `json:"output_tokens"` // counts by bin: 0, 1, 2-3, 4-7, ...
	PromptTokens []int64   `json:"prompt_tokens"`
	LatencyMS    Sketch    `json:"latency_ms"`
	TTFTMS       Sketch    `json:"ttft_ms"`
	TPS          Sketch    `json:"tokens_per_second"`
}

func newWindow() *DriftWindow {
	return &DriftWindow{OutputTokens: make([]int64, tokenBins), PromptTokens: make([]int64, tokenBins)}
}

func (w *DriftWindow) add(s DriftSample) {
	w.Requests++
	if s.Error {
		w.Errors++
	}
	if !s.Answered {
		return
	}
	w.Answered++
	if s.LengthCut {
		w.LengthCut++
	}
	w.OutputTokens[tokenBin(s.OutputTokens)]++
	w.PromptTokens[tokenBin(s.PromptTokens)]++
	w.LatencyMS.add(float64(s.Latency) / float64(time.Millisecond))
	if s.TimeToFirstToken > 0 {
		w.TTFTMS.add(float64(s.TimeToFirstToken) / float64(time.Millisecond))
	}
	w.TPS.add(s.TokensPerSecond)
}

func (w *DriftWindow) merge(o *DriftWindow) {
	if w.From.IsZero() || (!o.From.IsZero() && o.From.Before(w.From)) {
		w.From = o.From
	}
	if o.To.After(w.To) {
		w.To = o.To
	}
	w.Requests += o.Requests
	w.Errors += o.Errors
	w.Answered += o.Answered
	w.LengthCut += o.LengthCut
	for i := range tokenBins {
		if i < len(o.OutputTokens) {
			w.OutputTokens[i] += o.OutputTokens[i]
		}
		if i < len(o.PromptTokens) {
			w.PromptTokens[i] += o.PromptTokens[i]
		}
	}
	w.LatencyMS.merge(&o.LatencyMS)
	w.TTFTMS.merge(&o.TTFTMS)
	w.TPS.merge(&o.TPS)
}

// psiFloor stands in for an empty bin's share, so that a bin empty on one
// side and not on the other counts (as ln(share/psiFloor)) instead of
// being infinite.
const psiFloor = 1e-4

// PSI is the population stability index of two histograms over the same
// bins: the sum over bins of (a - e) ln(a / e), a and e the bins' shares
// of the recent and the expected (baseline) totals; a share of 0 counts as
// psiFloor. 0 when either is empty.
func PSI(recent, expected []int64) float64 {
	var na, ne int64
	for i := range recent {
		na += recent[i]
	}
	for i := range expected {
		ne += expected[i]
	}
	if na == 0 || ne == 0 {
		return 0
	}
	psi := 0.0
	for i := range max(len(recent), len(expected)) {
		var a, e float64
		if i < len(recent) {
			a = float64(recent[i]) / float64(na)
		}
		if i < len(expected) {
			e = float64(expected[i]) / float64(ne)
		}
		if a == e {
			continue
		}
		a, e = max(a, psiFloor), max(e, psiFloor)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}

// DriftShare is a share (of errors, of answers cut) in both windows.
type DriftShare struct {
	Recent   float64 `json:"recent"`
	Baseline float64 `json:"baseline"`
}

// DriftFlag is a signal past its threshold.
type DriftFlag struct {
	Signal string  `json:"signal"`
	Level  string  `json:"level"` // "watch" or "act"
	Value  float64 `json:"value"`
	Reason string  `json:"reason"`
}

// DriftReport compares the recent window with the baseline: the /metrics
// JSON's drift block.
type DriftReport struct {
	// Status is ok, watch, act (the worst flag), or insufficient_data
	// while either window has fewer answered requests than MinRequests.
	Status           string                `json:"status"`
	RecentWindow     string                `json:"recent_window"`
	BaselineWindow   string                `json:"baseline_window"` // a duration, or "pinned"
	BaselineFrom     *time.Time            `json:"baseline_from,omitempty"`
	BaselineTo       *time.Time            `json:"baseline_to,omitempty"`
	RecentRequests   int64                 `json:"recent_requests"`
	BaselineRequests int64                 `json:"baseline_requests"`
	MinRequests      int                   `json:"min_requests"`
	PSI              map[string]float64    `json:"psi"`
	Ratio            map[string]float64    `json:"ratio"` // recent over baseline
	Share            map[string]DriftShare `json:"share"`
	Flags            []DriftFlag           `json:"flags"`
}

// DriftMonitor watches output and prompt length, latency, time to first
// token, throughput, errors and answers cut short over a recent window
// against a baseline window (the one before it, or a pinned snapshot). It
// implements api.Recorder. Safe for concurrent use.
type DriftMonitor struct {
	cfg              DriftConfig
	nRecent, nBase   int64
	mu               sync.Mutex
	buckets          map[int64]*DriftWindow // by time / resolution
	modelAttr        []attribute.KeyValue
	lastSaveErrorLog time.Time // Keep's
}

// NewDriftMonitor returns a monitor with no history.
func NewDriftMonitor(cfg DriftConfig) *DriftMonitor {
	if cfg.Recent <= 0 {
		cfg.Recent = time.Hour
	}
	if cfg.Baseline <= 0 {
		cfg.Baseline = 24 * time.Hour
	}
	if cfg.Resolution <= 0 {
		cfg.Resolution = max(time.Second, cfg.Recent/60)
	}
	if cfg.MinRequests <= 0 {
		cfg.MinRequests = 50
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &DriftMonitor{cfg: cfg, buckets: map[int64]*DriftWindow{},
		nRecent: int64((cfg.Recent + cfg.Resolution - 1) / cfg.Resolution),
		nBase:   int64((cfg.Baseline + cfg.Resolution - 1) / cfg.Resolution)}
	if cfg.Model != "" {
		m.modelAttr = []attribute.KeyValue{attribute.String("gen_ai.request.model", cfg.Model)}
	}
	return m
}

func (m *DriftMonitor) index(t time.Time) int64 {
	return t.UnixNano() / int64(m.cfg.Resolution)
}

// Observe adds one request.
func (m *DriftMonitor) Observe(s DriftSample) {
	if s.Time.IsZero() {
		s.Time = m.cfg.Now()
	}
	i := m.index(s.Time)
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buckets[i]
	if b == nil {
		b = newWindow()
		b.From = time.Unix(0, i*int64(m.cfg.Resolution)).UTC()
		b.To = b.From.Add(m.cfg.Resolution)
		m.buckets[i] = b
		m.prune(m.index(m.cfg.Now()))
	}
	b.add(s)
}

// prune drops buckets older than both windows; m.mu is held.
func (m *DriftMonitor) prune(now int64) {
	for i := range m.buckets {
		if i <= now-m.nRecent-m.nBase {
			delete(m.buckets, i)
		}
	}
}

// Record adds an API request (api.Recorder): failures count in the error
// share, answered requests in every figure; refusals by policy (an
// unknown key, a spent budget) are not counted.
func (m *DriftMonitor) Record(_ context.Context, rec *api.Record) {
	if rec.ErrorType == api.KindUnauthorized || rec.ErrorType == api.KindBudget {
		return
	}
	res := &rec.Result
	s := DriftSample{Time: rec.Finished, Error: !rec.Succeeded()}
	if rec.Succeeded() && !res.Admitted.IsZero() {
		s.Answered = true
		s.OutputTokens, s.PromptTokens = res.OutputTokens, res.PromptTokens
		s.Latency, s.TimeToFirstToken = rec.Duration(), res.TimeToFirstToken()
		if d := rec.Duration().Seconds(); d > 0 {
			s.TokensPerSecond = float64(res.OutputTokens) / d
		}
		s.LengthCut = res.FinishReason == engine.FinishLength
	}
	m.Observe(s)
}

// windows merges the buckets of the recent and the baseline windows.
func (m *DriftMonitor) windows() (recent, base *DriftWindow) {
	now := m.index(m.cfg.Now())
	recent, base = newWindow(), newWindow()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
	for i, b := range m.buckets {
		switch {
		case i > now:
		case i > now-m.nRecent:
			recent.merge(b)
		case i > now-m.nRecent-m.nBase:
			base.merge(b)
		}
	}
	if m.cfg.Pinned != nil {
		base = newWindow()
		base.merge(m.cfg.Pinned)
	}
	return recent, base
}

// Window is the rolling baseline window's aggregate now (what qwend
// drift snapshot pins), or with recentWindow the recent window's.
func (m *DriftMonitor) Window(recentWindow bool) *DriftWindow {
	r, b := m.windows()
	if recentWindow {
		return r
	}
	return b
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// Report compares the windows now.
func (m *DriftMonitor) Report() DriftReport {
	recent, base := m.windows()
	rep := DriftReport{
		Status: "insufficient_data", RecentWindow: m.cfg.Recent.String(), BaselineWindow: m.cfg.Baseline.String(),
		RecentRequests: recent.Requests, BaselineRequests: base.Requests, MinRequests: m.cfg.MinRequests,
		PSI: map[string]float64{}, Ratio: map[string]float64{}, Share: map[string]DriftShare{}, Flags: []DriftFlag{},
	}
	if m.cfg.Pinned != nil {
		rep.BaselineWindow = "pinned"
	}
	if base.Requests > 0 {
		from, to := base.From, base.To
		rep.BaselineFrom, rep.BaselineTo = &from, &to
	}
	if recent.Answered < int64(m.cfg.MinRequests) || base.Answered < int64(m.cfg.MinRequests) {
		return rep
	}
	rep.Status = "ok"
	flag := func(signal, level string, v float64, reason string) {
		rep.Flags = append(rep.Flags, DriftFlag{Signal: signal, Level: level, Value: v, Reason: reason})
		if level == "act" || rep.Status == "ok" {
			rep.Status = level
		}
	}
	for _, p := range []struct {
		signal    string
		recent, e []int64
	}{
		{SignalOutputTokens, recent.OutputTokens, base.OutputTokens},
		{SignalPromptTokens, recent.PromptTokens, base.PromptTokens},
	} {
		v := round4(PSI(p.recent, p.e))
		rep.PSI[p.signal] = v
		switch {
		case v >= PSIAct:
			flag(p.signal, "act", v, fmt.Sprintf("PSI %.3g >= %g", v, PSIAct))
		case v >= PSIWatch:
			flag(p.signal, "watch", v, fmt.Sprintf("PSI %.3g >= %g", v, PSIWatch))
		}
	}
	for _, r := range []struct {
		signal  string
		r, b    *Sketch
		quantum float64
	}{
		{SignalLatencyP50, &recent.LatencyMS, &base.LatencyMS, 0.5},
		{SignalLatencyP95, &recent.LatencyMS, &base.LatencyMS, 0.95},
		{SignalTTFTP50, &recent.TTFTMS, &base.TTFTMS, 0.5},
		{SignalTTFTP95, &recent.TTFTMS, &base.TTFTMS, 0.95},
		{SignalTPSP50, &recent.TPS, &base.TPS, 0.5},
		{SignalTPSP95, &recent.TPS, &base.TPS, 0.95},
	} {
		b := r.b.quantile(r.quantum)
		if b <= 0 || r.r.count() == 0 {
			continue
		}
		v := round4(r.r.quantile(r.quantum) / b)
		rep.Ratio[r.signal] = v
		if v < RatioLow || v > RatioHigh {
			flag(r.signal, "act", v, fmt.Sprintf("recent/baseline %.3g outside %g-%g", v, RatioLow, RatioHigh))
		}
	}
	share := func(signal string, rn, rd, bn, bd int64) {
		s := DriftShare{Recent: round4(float64(rn) / float64(max(rd, 1))), Baseline: round4(float64(bn) / float64(max(bd, 1)))}
		rep.Share[signal] = s
		if s.Recent-s.Baseline > ShareRise || (s.Recent > 0.01 && s.Recent >= 2*s.Baseline && s.Recent > s.Baseline) {
			flag(signal, "act", s.Recent, fmt.Sprintf("share %.3g against %.3g in the baseline", s.Recent, s.Baseline))
		}
	}
	share(SignalError, recent.Errors, recent.Requests, base.Errors, base.Requests)
	share(SignalLengthCut, recent.LengthCut, recent.Answered, base.LengthCut, base.Answered)
	return rep
}

// driftGauges are the monitor's instruments.
type driftGauges struct {
	psi, ratio, share, requests, status metric.Float64ObservableGauge
}

// Metric names of the drift gauges. In the Prometheus exposition:
// qwend_drift_psi, qwend_drift_ratio, qwend_drift_share_ratio,
// qwend_drift_requests and qwend_drift_status.
const (
	MetricDriftPSI      = "qwend.drift.psi"      // by qwend.drift.signal: output_tokens, prompt_tokens
	MetricDriftRatio    = "qwend.drift.ratio"    // recent over baseline, by qwend.drift.signal
	MetricDriftShare    = "qwend.drift.share"    // by qwend.drift.signal (error, length_cut) and qwend.drift.window
	MetricDriftRequests = "qwend.drift.requests" // requests by qwend.drift.window
	MetricDriftStatus   = "qwend.drift.status"   // -1 insufficient data, 0 ok, 1 watch, 2 act
)

// RegisterMetrics creates the qwend.drift.* gauges on meter, read from a
// Report at each collection: psi, ratio and share only once both windows
// hold MinRequests answered requests, requests always, status (0 ok, 1
// watch, 2 act) once there are figures. Unregister the returned
// registration to stop.
func (m *DriftMonitor) RegisterMetrics(meter metric.Meter) (metric.Registration, error) {
	var g driftGauges
	var err error
	for _, d := range []struct {
		dst              *metric.Float64ObservableGauge
		name, unit, desc string
	}{
		{&g.psi, MetricDriftPSI, "", "Population stability index of a per-request distribution, recent window against the baseline"},
		{&g.ratio, MetricDriftRatio, "1", "Recent window's quantile over the baseline's"},
		{&g.share, MetricDriftShare, "1", "Share of requests that failed, or of answers cut short, in a window"},
		{&g.requests, MetricDriftRequests, "{request}", "Requests in a drift window"},
		{&g.status, MetricDriftStatus, "", "Drift status: -1 insufficient data, 0 ok, 1 watch, 2 act"},
	} {
		if *d.dst, err = meter.Float64ObservableGauge(d.name, metric.WithUnit(d.unit), metric.WithDescription(d.desc)); err != nil {
			return nil, err
		}
	}
	attrs := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributes(append(slices.Clone(m.modelAttr), kv...)...)
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		r := m.Report()
		o.ObserveFloat64(g.requests, float64(r.RecentRequests), attrs(AttrWindow.String("recent")))
		o.ObserveFloat64(g.requests, float64(r.BaselineRequests), attrs(AttrWindow.String("baseline")))
		o.ObserveFloat64(g.status, map[string]float64{"insufficient_data": -1, "ok": 0, "watch": 1, "act": 2}[r.Status], attrs())
		if r.Status == "insufficient_data" {
			return nil
		}
		for s, v := range r.PSI {
			o.ObserveFloat64(g.psi, v, attrs(AttrSignal.String(s)))
		}
		for s, v := range r.Ratio {
			o.ObserveFloat64(g.ratio, v, attrs(AttrSignal.String(s)))
		}
		for s, v := range r.Share {
			o.ObserveFloat64(g.share, v.Recent, attrs(AttrSignal.String(s), AttrWindow.String("recent")))
			o.ObserveFloat64(g.share, v.Baseline, attrs(AttrSignal.String(s), AttrWindow.String("baseline")))
		}
		return nil
	}, g.psi, g.ratio, g.share, g.requests, g.status)
}

// driftState is the monitor's history as saved: its buckets.
type driftState struct {
	Resolution time.Duration          `json:"resolution"`
	Buckets    map[int64]*DriftWindow `json:"buckets"`
}

// MarshalState returns the monitor's history as JSON (an object holding
// the resolution, in ns, and the buckets), for LoadState in a restarted
// daemon.
func (m *DriftMonitor) MarshalState() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return json.Marshal(driftState{Resolution: m.cfg.Resolution, Buckets: m.buckets})
}

// LoadState adds the history that MarshalState returned. Buckets older
// than both windows are dropped. It fails, adding nothing, for state that
// is not such JSON or that was saved at another resolution (another
// --drift-window).
func (m *DriftMonitor) LoadState(state []byte) error {
	var st driftState
	if err := json.Unmarshal(state, &st); err != nil {
		return err
	}
	if st.Resolution != m.cfg.Resolution {
		return fmt.Errorf("saved at a resolution of %s, this monitor's is %s", st.Resolution, m.cfg.Resolution)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, w := range st.Buckets {
		if w == nil {
			continue
		}
		if cur := m.buckets[i]; cur != nil {
			cur.merge(w)
			continue
		}
		nw := newWindow()
		nw.merge(w)
		m.buckets[i] = nw
	}
	m.prune(m.index(m.cfg.Now()))
	return nil
}

// SaveFile writes the monitor's history (MarshalState) to path,
// atomically, so that a restarted daemon keeps its baseline window
// (LoadFile).
func (m *DriftMonitor) SaveFile(path string) error {
	b, err := m.MarshalState()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// writeFileAtomic replaces path with b: a reader sees the old file or the
// new one, never a part.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadFile adds the history saved in path (LoadState); a file that does
// not exist is no history.
func (m *DriftMonitor) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.LoadState(b); err != nil {
		return fmt.Errorf("drift state %s: %w", path, err)
	}
	return nil
}

// Keep hands the history (MarshalState) to save every interval until ctx
// ends, then once more; errors go to onError (at most one a minute). save
// is called from Keep's goroutine only, and not after Keep returns.
func (m *DriftMonitor) Keep(ctx context.Context, interval time.Duration, save func(state []byte) error, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	keep := func() {
		b, err := m.MarshalState()
		if err == nil {
			err = save(b)
		}
		if err != nil && onError != nil {
			if now := time.Now(); now.Sub(m.lastSaveErrorLog) >= time.Minute {
				m.lastSaveErrorLog = now
				onError(err)
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			keep()
			return
		case <-t.C:
			keep()
		}
	}
}

// WriteWindowFile writes a window as JSON (a pinned baseline).
func WriteWindowFile(path string, w *DriftWindow) error {
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadWindowFile reads a pinned baseline written by WriteWindowFile.
func ReadWindowFile(path string) (*DriftWindow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w := newWindow()
	var in DriftWindow
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("drift baseline %s: %w", path, err)
	}
	w.merge(&in)
	if w.Answered == 0 {
		return nil, fmt.Errorf("drift baseline %s: no answered requests", path)
	}
	return w, nil
}
