package otel

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/gpu"
	"github.com/qwend/qwend/logging"
	"github.com/qwend/qwend/quality"
	"github.com/qwend/qwend/usage"
)

// EngineStats is what the gauges read from the engine.
type EngineStats interface {
	Stats() engine.Stats
}

// GPUSource gives GPU readings.
type GPUSource interface {
	Sample() gpu.Snapshot
	Cached() gpu.Snapshot
}

// Observer implements engine.Observer (scheduler steps) and api.Recorder:
// every finished API request updates the OTel instruments (with the
// request's context, so histogram exemplars carry its trace), the JSON
// summary of /metrics and the service log, all from the same api.Record.
type Observer struct {
	model   string
	log     *logging.ServiceLog
	gpus    GPUSource
	summary *Summary
	drift   *quality.DriftMonitor // nil: none

	duration, ttft, tpot, tokenUsage, queueWait, batchSize, stepDuration metric.Float64Histogram
	tokens, requests                                                     metric.Int64Counter
	cost                                                                 metric.Float64Counter
	budgetRefusals                                                       metric.Int64Counter
	feedback                                                             metric.Int64Counter
	feedbackLabels                                                       map[string]metric.AddOption

	base          attribute.Set
	stepPhases    [3][]metric.RecordOption    // a slice each: passed as is, no per-call allocation
	tokenTypes    [3]metric.MeasurementOption // input, output, cached (counter)
	usageTypes    [2]metric.MeasurementOption // input, output (histogram)
	registrations []metric.Registration
}

// ObserverConfig holds the Observer's dependencies.
type ObserverConfig struct {
	Model      string // the loaded model's name: the only model attribute value
	Meter      metric.MeterProvider
	ServiceLog *logging.ServiceLog // nil: no service log
	GPUs       GPUSource
	Engine     EngineStats // nil: no engine gauges
	Summary    *Summary    // nil: a new one
	// ExportErrors, when set, is reported as a counter.
	ExportErrors func() int64
	// Ledger, when set, reports the ledger writer's counters as gauges.
	Ledger func() usage.WriterStats
	// Drift, when set, receives every record, reports its qwend.drift.*
	// gauges and the /metrics JSON's drift block.
	Drift *quality.DriftMonitor
}

// NewObserver creates the instruments and registers the observable gauges
// (engine load, caches, GPUs), which the periodic reader calls on its own
// schedule, never per request.
func NewObserver(cfg ObserverConfig) (*Observer, error) {
	m := cfg.Meter.Meter("github.com/qwend/qwend/otel")
	o := &Observer{model: cfg.Model, log: cfg.ServiceLog, gpus: cfg.GPUs, summary: cfg.Summary, drift: cfg.Drift}
	if o.summary == nil {
		o.summary = NewSummary()
	}
	var errs []error
	hist := func(name, unit, desc string, b []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(b...))
		errs = append(errs, err)
		return h
	}
	o.duration = hist(MetricRequestDuration, "s", "Time from request to last token.", BucketsRequestDuration)
	o.ttft = hist(MetricTimeToFirstToken, "s", "Time from request to the first output token.", BucketsTimeToFirstToken)
	o.tpot = hist(MetricTimePerOutputToken, "s", "Mean time per output token after the first.", BucketsTimePerOutputToken)
	o.tokenUsage = hist(MetricTokenUsage, "{token}", "Tokens per request by type.", BucketsTokenUsage)
	o.queueWait = hist(MetricQueueWait, "s", "Time a request waited for a slot.", BucketsQueueWait)
	o.batchSize = hist(MetricBatchSize, "{sequence}", "Sequences decoded together in one scheduler step.", BucketsBatchSize)
	o.stepDuration = hist(MetricStepDuration, "s", "Scheduler step time by phase (decode, sample, send).", BucketsStepDuration)
	var err error
	o.tokens, err = m.Int64Counter(MetricTokens, metric.WithUnit("{token}"), metric.WithDescription("Tokens processed by type: input, output, cached."))
	errs = append(errs, err)
	o.requests, err = m.Int64Counter(MetricRequests, metric.WithUnit("{request}"), metric.WithDescription("Inference requests by status and error type."))
	errs = append(errs, err)
	o.cost, err = m.Float64Counter(MetricCost, metric.WithUnit("{USD}"), metric.WithDescription("What requests cost under the --prices table, in US dollars."))
	errs = append(errs, err)
	o.budgetRefusals, err = m.Int64Counter(MetricBudgetRefusals, metric.WithUnit("{request}"), metric.WithDescription("Requests refused because the user's daily budget was spent."))
	errs = append(errs, err)
	o.feedback, err = m.Int64Counter(MetricFeedback, metric.WithUnit("{feedback}"), metric.WithDescription("User feedback on responses by label (up, down)."))
	errs = append(errs, err)
	o.feedbackLabels = map[string]metric.AddOption{}
	for _, l := range []string{"up", "down"} {
		o.feedbackLabels[l] = metric.WithAttributes(attribute.String(AttrFeedbackLabel, l))
	}

	o.base = attribute.NewSet(attribute.String(AttrProvider, ProviderName), attribute.String(AttrRequestModel, cfg.Model))
	for i, p := range []string{"decode", "sample", "send"} {
		o.stepPhases[i] = []metric.RecordOption{metric.WithAttributes(attribute.String(AttrStepPhase, p))}
	}
	for i, t := range []string{"input", "output", "cached"} {
		o.tokenTypes[i] = metric.WithAttributes(attribute.String(AttrProvider, ProviderName), attribute.String(AttrRequestModel, cfg.Model), attribute.String(AttrTokenType, t))
		if i < 2 {
			o.usageTypes[i] = o.tokenTypes[i]
		}
	}

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := o.registerGauges(m, cfg); err != nil {
		return nil, err
	}
	if o.drift != nil {
		r, err := o.drift.RegisterMetrics(m)
		if err != nil {
			o.Close()
			return nil, err
		}
		o.registrations = append(o.registrations, r)
	}
	return o, nil
}

// Summary is the JSON view of /metrics.
func (o *Observer) Summary() *Summary { return o.summary }

// Close unregisters the gauge callbacks.
func (o *Observer) Close() error {
	var errs []error
	for _, r := range o.registrations {
		errs = append(errs, r.Unregister())
	}
	return errors.Join(errs...)
}

// Record records one finished API request (api.Recorder): the request
// metrics with error.type, the token counters once a slot took the request,
// the /metrics JSON summary and one service log line, all from rec. ctx
// carries the inference span when the engine ran, so histogram exemplars
// and the log line point at it.
func (o *Observer) Record(ctx context.Context, rec *api.Record) {
	if o.drift != nil {
		o.drift.Record(ctx, rec)
	}
	op := rec.Operation
	res := &rec.Result
	status := "success"
	if !rec.Succeeded() {
		status = "error"
	}
	attrs := []attribute.KeyValue{
		attribute.String(AttrOperation, op),
		attribute.String(AttrProvider, ProviderName),
		attribute.String(AttrRequestModel, o.model),
		attribute.String(AttrResponseModel, o.model),
	}
	if rec.ErrorType != "" {
		attrs = append(attrs, attribute.String(AttrErrorType, rec.ErrorType))
	}
	withAttrs := metric.WithAttributes(attrs...)
	o.duration.Record(ctx, rec.Duration().Seconds(), withAttrs)
	o.requests.Add(ctx, 1, metric.WithAttributes(append(attrs, attribute.String(AttrStatus, status))...))
	if !res.Admitted.IsZero() {
		o.queueWait.Record(ctx, res.QueueWait().Seconds(), withAttrs)
	}
	if !res.FirstToken.IsZero() {
		o.ttft.Record(ctx, res.TimeToFirstToken().Seconds(), withAttrs)
	}
	if res.OutputTokens > 1 {
		o.tpot.Record(ctx, res.TimePerOutputToken().Seconds(), withAttrs)
	}
	// tokens count once a slot took the request: a refused request
	// processed none
	if !res.Admitted.IsZero() {
		o.tokenUsage.Record(ctx, float64(res.PromptTokens), o.usageTypes[0])
		o.tokens.Add(ctx, int64(res.PromptTokens), o.tokenTypes[0])
		o.tokenUsage.Record(ctx, float64(res.OutputTokens), o.usageTypes[1])
		o.tokens.Add(ctx, int64(res.OutputTokens), o.tokenTypes[1])
		o.tokens.Add(ctx, int64(res.CachedTokens), o.tokenTypes[2])
	}
	if rec.CostMicroUSD > 0 {
		o.cost.Add(ctx, float64(rec.CostMicroUSD)/1e6, metric.WithAttributeSet(o.base))
	}
	if rec.ErrorType == api.KindBudget {
		o.budgetRefusals.Add(ctx, 1, metric.WithAttributeSet(o.base))
	}
	o.summary.add(rec)

	var snap any
	if o.gpus != nil {
		snap = o.gpus.Cached()
	}
	line := logging.Inference{
		Time: rec.Finished, Model: o.model, Operation: op, Endpoint: rec.Endpoint, HTTPStatus: rec.Status,
		Status: status, ErrorType: rec.ErrorType, Latency: rec.Duration(), TokensGenerated: res.OutputTokens,
		TokensPerSecond: tokensPerSecond(res.OutputTokens, rec.Duration().Seconds()),
		PromptTokens:    res.PromptTokens, CachedTokens: res.CachedTokens, FinishReason: res.FinishReason, GPU: snap,
		User: rec.Identity.User, Feature: rec.Identity.Feature, CostUSD: float64(rec.CostMicroUSD) / 1e6,
	}
	if rec.Request != nil {
		line.MaxNewTokens = rec.Request.MaxTokens
		line.Temperature = shortFloat(rec.Request.Sampling.Temperature)
	}
	o.log.Inference(ctx, line)
}

// RecordFeedback counts one new feedback by its label (api.FeedbackRecorder).
func (o *Observer) RecordFeedback(ctx context.Context, label string) {
	opt, ok := o.feedbackLabels[label]
	if !ok {
		return // labels are a closed set
	}
	o.feedback.Add(ctx, 1, opt)
	o.summary.addFeedback(label)
}

func tokensPerSecond(tokens int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(tokens) / seconds
}

// ObserveStep records one scheduler step; called from the scheduler.
func (o *Observer) ObserveStep(s engine.StepStats) {
	ctx := context.Background()
	o.batchSize.Record(ctx, float64(s.Sequences))
	o.stepDuration.Record(ctx, s.Decode.Seconds(), o.stepPhases[0]...)
	o.stepDuration.Record(ctx, s.Sample.Seconds(), o.stepPhases[1]...)
	o.stepDuration.Record(ctx, s.Send.Seconds(), o.stepPhases[2]...)
}

func (o *Observer) registerGauges(m metric.Meter, cfg ObserverConfig) error {
	var errs []error
	i64 := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	f64 := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	running := i64(MetricRequestsRunning, "{request}", "Requests holding a slot.")
	waiting := i64(MetricRequestsWaiting, "{request}", "Requests waiting for a slot.")
	kv := f64(MetricKVCacheUsage, "1", "Share of the slots' KV cache holding tokens.")
	hit := f64(MetricPrefixCacheHit, "1", "Prompt tokens served from the prefix cache over all prompt tokens.")
	exportErrs, err := m.Int64ObservableCounter(MetricExportErrors, metric.WithUnit("{error}"), metric.WithDescription("Failed telemetry exports since start."))
	errs = append(errs, err)
	preempted, err := m.Int64ObservableCounter(MetricPreemptions, metric.WithUnit("{request}"),
		metric.WithDescription("Requests preempted since start because the shared KV cache ran short; each is recomputed and goes on."))
	errs = append(errs, err)
	util := f64(MetricGPUUtilization, "1", "GPU utilisation, 0 to 1.")
	used := i64(MetricGPUMemoryUsage, "By", "GPU memory in use.")
	limit := i64(MetricGPUMemoryLimit, "By", "GPU memory in all.")
	free := i64(MetricGPUMemoryFree, "By", "GPU memory free.")
	temp := f64(MetricGPUTemperature, "Cel", "GPU temperature.")
	power := f64(MetricGPUPower, "W", "GPU power draw.")
	clock := f64(MetricGPUSMClock, "MHz", "GPU SM clock.")
	ledgerQueue := i64(MetricLedgerQueue, "{row}", "Ledger rows waiting for their commit.")
	ledgerRows := i64(MetricLedgerRows, "{row}", "Ledger rows committed since start.")
	ledgerErrors := i64(MetricLedgerErrors, "{error}", "Failed ledger transactions since start.")
	ledgerSpilled := i64(MetricLedgerSpilled, "{row}", "Ledger rows written to the spill file since start.")
	ledgerDropped := i64(MetricLedgerDropped, "{row}", "Ledger rows lost since start: neither committed nor spilled.")
	if err := errors.Join(errs...); err != nil {
		return err
	}
	base := metric.WithAttributeSet(o.base)
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		if cfg.Engine != nil {
			s := cfg.Engine.Stats()
			ob.ObserveInt64(running, int64(s.Running), base)
			ob.ObserveInt64(waiting, int64(s.Waiting), base)
			if s.KVCacheCapacity > 0 {
				ob.ObserveFloat64(kv, float64(s.KVCacheTokens)/float64(s.KVCacheCapacity), base)
			}
			ob.ObserveInt64(preempted, s.Preemptions, base)
		}
		ob.ObserveFloat64(hit, o.summary.prefixHitRatio(), base)
		if cfg.ExportErrors != nil {
			ob.ObserveInt64(exportErrs, cfg.ExportErrors())
		}
		if cfg.Ledger != nil {
			st := cfg.Ledger()
			ob.ObserveInt64(ledgerQueue, st.Queue)
			ob.ObserveInt64(ledgerRows, st.Rows+st.Replayed)
			ob.ObserveInt64(ledgerErrors, st.Errors)
			ob.ObserveInt64(ledgerSpilled, st.Spilled)
			ob.ObserveInt64(ledgerDropped, st.Dropped)
		}
		if o.gpus == nil {
			return nil
		}
		for _, d := range o.gpus.Sample().Devices {
			if d.HostMemory {
				continue // not a GPU: the host's memory is not hw.gpu.memory
			}
			attrs := metric.WithAttributes(attribute.String(AttrHWID, deviceID(d)), attribute.String(AttrHWName, d.Name),
				attribute.Int(AttrGPUIndex, d.Index), attribute.Bool(AttrNVMLMissing, d.NVMLUnavailable))
			ob.ObserveInt64(used, int64(d.MemoryUsedBytes), attrs)
			ob.ObserveInt64(limit, int64(d.MemoryTotalBytes), attrs)
			ob.ObserveInt64(free, int64(d.MemoryFreeBytes), attrs)
			if d.NVMLUnavailable {
				continue // only memory is known without NVML
			}
			ob.ObserveFloat64(util, d.UtilizationPercent/100, attrs)
			ob.ObserveFloat64(temp, d.TemperatureC, attrs)
			ob.ObserveFloat64(power, d.PowerWatts, attrs)
			ob.ObserveFloat64(clock, d.SMClockMHz, attrs)
		}
		return nil
	}, running, waiting, kv, preempted, hit, exportErrs, util, used, limit, free, temp, power, clock, ledgerQueue, ledgerRows, ledgerErrors, ledgerSpilled, ledgerDropped)
	if err != nil {
		return err
	}
	o.registrations = append(o.registrations, reg)
	return nil
}

func deviceID(d gpu.Device) string {
	if d.UUID != "" {
		return d.UUID
	}
	return "device-" + strconv.Itoa(d.Index)
}

// shortFloat widens a float32 to the float64 with the same shortest decimal
// form (0.8, not 0.800000011920929).
func shortFloat(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}
