package otel

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/gpu"
	"github.com/qwend/qwend/logging"
	"github.com/qwend/qwend/synth"
)

type fixedGPU struct{ snap gpu.Snapshot }

func (f fixedGPU) Sample() gpu.Snapshot { return f.snap }
func (f fixedGPU) Cached() gpu.Snapshot { return f.snap }

// The real engine on a tiny synthetic model, the real SDK with an in-memory
// span recorder and a manual metric reader.
func TestInferenceTelemetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := synth.WriteTiny(context.Background(), path, 3); err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var logBuf bytes.Buffer
	gpus := fixedGPU{gpu.Snapshot{Devices: []gpu.Device{{Index: 0, UUID: "GPU-x", Name: "H100", UtilizationPercent: 50, MemoryTotalBytes: 100, MemoryUsedBytes: 30, MemoryFreeBytes: 70},
		// the fallback's CPU device: the host's memory, no GPU
		{Index: 1, Name: "CPU", MemoryTotalBytes: 1 << 34, MemoryFreeBytes: 1 << 33, NVMLUnavailable: true, HostMemory: true}}}}

	var eng *engine.Engine
	obs, err := NewObserver(ObserverConfig{Model: "tiny", Meter: mp, ServiceLog: logging.NewServiceLog(&logBuf), GPUs: gpus,
		Engine: statsFunc(func() engine.Stats { return eng.Stats() })})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	eng, err = engine.New(context.Background(), engine.Config{ModelPath: path, ModelName: "tiny", Parallel: 2, ContextPerSlot: 256, Threads: 1},
		engine.WithTracerProvider(tp), engine.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	ctx, parent := tp.Tracer("test").Start(context.Background(), "client")
	req := &engine.Request{ID: "chatcmpl-1", Operation: engine.OperationChat, Prompt: "hello world", MaxTokens: 7,
		Sampling: engine.SamplingParams{Temperature: 0.5, TopK: 10, TopP: 0.9, Seed: 42}, HasSeed: true, Stream: true}
	// record as api's one end does: the record, with the inference span's context
	record := func(req *engine.Request, res engine.Result, errType string, status int) {
		start := time.Now()
		rec := &api.Record{Endpoint: "POST /v1/x", Operation: req.Operation, Model: "tiny", Request: req, Result: res,
			ErrorType: errType, Status: status, Started: start.Add(-res.Duration()), Finished: start}
		rctx := ctx
		if res.SpanContext.IsValid() {
			rctx = trace.ContextWithSpanContext(ctx, res.SpanContext)
		}
		obs.Record(rctx, rec)
	}
	res, err := eng.Generate(ctx, req, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	record(req, res, "", 200)
	bad := &engine.Request{Operation: engine.OperationCompletion, Prompt: strings.Repeat("hello ", 300), MaxTokens: 10}
	badRes, err := eng.Generate(ctx, bad, func(string) {})
	if err == nil {
		t.Fatal("oversized request accepted")
	}
	record(bad, badRes, engine.ErrorType(err), 400)
	// refused before the engine: a record without request or result
	obs.Record(ctx, &api.Record{Endpoint: "POST /v1/x", Operation: engine.OperationChat, Model: "tiny",
		ErrorType: api.KindInvalid, Status: 400, Started: time.Now(), Finished: time.Now()})
	parent.End()

	// spans: the inference span under the caller's, with its children
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
	}
	inf := byName["chat tiny"]
	if inf == nil {
		t.Fatalf("no 'chat tiny' span among %v", names(spans.Ended()))
	}
	if inf.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("inference span is not the caller's child")
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range inf.Attributes() {
		attrs[a.Key] = a.Value
	}
	for k, want := range map[attribute.Key]any{
		"gen_ai.operation.name": "chat", "gen_ai.provider.name": "qwend", "gen_ai.request.model": "tiny",
		"gen_ai.response.model": "tiny", "gen_ai.response.id": "chatcmpl-1", "gen_ai.request.max_tokens": int64(7),
		"gen_ai.request.top_k": int64(10), "gen_ai.request.seed": int64(42), "gen_ai.request.stream": true,
		"gen_ai.usage.input_tokens": int64(res.PromptTokens), "gen_ai.usage.output_tokens": int64(res.OutputTokens),
	} {
		if got := attrs[k].AsInterface(); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if fr := attrs["gen_ai.response.finish_reasons"].AsStringSlice(); len(fr) != 1 || fr[0] != res.FinishReason {
		t.Errorf("finish reasons %v", fr)
	}
	for _, child := range []string{"queue", "prefill", "decode"} {
		c := byName[child]
		if c == nil || c.Parent().SpanID() != inf.SpanContext().SpanID() {
			t.Errorf("child span %q missing or misplaced", child)
		}
	}
	failed := byName["text_completion tiny"]
	if failed == nil || failed.Status().Code.String() != "Error" {
		t.Fatalf("failed inference span %v", failed)
	}
	for _, a := range failed.Attributes() {
		if a.Key == "error.type" && a.Value.AsString() != "context_window_exceeded" {
			t.Errorf("error.type %q", a.Value.AsString())
		}
	}

	// metrics: counts and sums equal the result; exemplars carry the trace
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}
	dur := got[MetricRequestDuration].Data.(metricdata.Histogram[float64])
	var count uint64
	var exemplarTrace bool
	for _, dp := range dur.DataPoints {
		count += dp.Count
		for _, ex := range dp.Exemplars {
			tid := parent.SpanContext().TraceID()
			exemplarTrace = exemplarTrace || bytes.Equal(ex.TraceID, tid[:])
		}
	}
	if count != 3 {
		t.Errorf("request duration count %d, want 3", count)
	}
	if !exemplarTrace {
		t.Error("no exemplar carries the request's trace id")
	}
	tokens := got[MetricTokens].Data.(metricdata.Sum[int64])
	byType := map[string]int64{}
	for _, dp := range tokens.DataPoints {
		v, _ := dp.Attributes.Value(AttrTokenType)
		byType[v.AsString()] += dp.Value
	}
	if byType["output"] != int64(res.OutputTokens) || byType["input"] != int64(res.PromptTokens) {
		t.Errorf("tokens by type %v, result %+v", byType, res)
	}
	reqs := got[MetricRequests].Data.(metricdata.Sum[int64])
	statuses := map[string]int64{}
	for _, dp := range reqs.DataPoints {
		v, _ := dp.Attributes.Value(AttrStatus)
		e, _ := dp.Attributes.Value(AttrErrorType)
		statuses[v.AsString()+"/"+e.AsString()] += dp.Value
	}
	if statuses["success/"] != 1 || statuses["error/context_window_exceeded"] != 1 || statuses["error/invalid_request"] != 1 {
		t.Errorf("requests %v", statuses)
	}
	util := got[MetricGPUUtilization].Data.(metricdata.Gauge[float64])
	if len(util.DataPoints) != 1 || util.DataPoints[0].Value != 0.5 {
		t.Errorf("gpu utilisation %+v", util.DataPoints)
	}
	if id, _ := util.DataPoints[0].Attributes.Value(AttrHWID); id.AsString() != "GPU-x" {
		t.Errorf("hw.id %q", id.AsString())
	}
	if limit := got[MetricGPUMemoryLimit].Data.(metricdata.Gauge[int64]); len(limit.DataPoints) != 1 || limit.DataPoints[0].Value != 100 {
		t.Errorf("gpu memory limit %+v: want the GPU's alone, not the host's", limit.DataPoints)
	}
	for _, name := range []string{MetricTimeToFirstToken, MetricTimePerOutputToken, MetricQueueWait, MetricBatchSize, MetricStepDuration, MetricRequestsRunning, MetricKVCacheUsage, MetricPreemptions, MetricPrefixCacheHit, MetricGPUMemoryLimit} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s not collected", name)
		}
	}

	// service log: one line each, with the inference span's ids
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines", len(lines))
	}
	var line map[string]any
	json.Unmarshal([]byte(lines[0]), &line)
	if line["trace_id"] != inf.SpanContext().TraceID().String() || line["span_id"] != inf.SpanContext().SpanID().String() {
		t.Errorf("log line ids %v/%v, span %s", line["trace_id"], line["span_id"], inf.SpanContext().SpanID())
	}
	if line["tokens_generated"] != float64(res.OutputTokens) || line["temperature"] != 0.5 {
		t.Errorf("log line %s", lines[0])
	}
	var refused map[string]any
	json.Unmarshal([]byte(lines[2]), &refused)
	if refused["status"] != "error" || refused["error_type"] != "invalid_request" || refused["http_status"] != 400.0 ||
		refused["endpoint"] != "POST /v1/x" || refused["tokens_generated"] != 0.0 {
		t.Errorf("refused request's log line %s", lines[2])
	}

	// the JSON summary agrees
	sum := obs.Summary().Snapshot()
	if sum.RequestsTotal != 3 || sum.ErrorsTotal != 2 || sum.TokensGeneratedTotal != int64(res.OutputTokens) ||
		sum.ErrorsByType["context_window_exceeded"] != 1 || sum.ErrorsByType["invalid_request"] != 1 {
		t.Errorf("summary %+v", sum)
	}
	_ = os.Remove(path)
}

type statsFunc func() engine.Stats

func (f statsFunc) Stats() engine.Stats { return f() }

func names(ss []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}

// ObserveStep runs on the scheduler once per step: with the real SDK, two
// readers (OTLP and Prometheus, as in Setup) and its cumulative state warm,
// it allocates nothing.
func TestObserveStepDoesNotAllocate(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()), sdkmetric.WithReader(sdkmetric.NewManualReader()))
	obs, err := NewObserver(ObserverConfig{Model: "tiny", Meter: mp})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	st := engine.StepStats{Sequences: 4, Tokens: 4, Decode: 3e6, Sample: 2e5, Send: 1e4}
	obs.ObserveStep(st)
	if n := testing.AllocsPerRun(100, func() { obs.ObserveStep(st) }); n != 0 {
		t.Errorf("ObserveStep allocates %.1f times per step", n)
	}
}
