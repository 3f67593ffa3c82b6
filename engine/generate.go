package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ollama/ollama/llama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// sequence is one request inside the scheduler.
type sequence struct {
	ctx    context.Context
	req    *Request
	prompt []int
	maxOut int
	out    chan output // text pieces; buffered so the scheduler never blocks
	done   chan struct{}
	res    Result // written by the scheduler until done is closed
	err    error
	// grammar constrains sampling (Request.Grammar); freed by Generate
	// once the scheduler is done with the sequence
	grammar *llama.Grammar
	// resume is a preempted sequence's decoding state (Config.KVPool),
	// restored when a slot takes it again; its prompt is then the prompt
	// and the output so far
	resume     *resumeState
	admittedAt time.Time // the latest time a slot took it
	// progress signals (buffered, never blocking the scheduler) that
	// prog changed; nil unless Request.Progress is set
	progress chan struct{}
	progMu   sync.Mutex
	prog     PromptProgress
	progFrom time.Time
}

// resumeState is what a preempted sequence's slot held besides the KV
// cache: the text held back, the sampler (its random state and grammar)
// and the logprobs not yet sent.
type resumeState struct {
	buf     textBuffer
	sampler *sampler
	lp      logprobState
}

// output is a piece of text and the logprobs of the tokens whose last
// byte it holds (Request.Logprobs).
type output struct {
	text     string
	logprobs []TokenLogprob
}

// setProgress records how far the prompt is (from the scheduler) and
// signals Generate's goroutine. Total and Cached are the first call's;
// Processed only grows.
func (q *sequence) setProgress(cached, processed int, now time.Time) {
	if q.progress == nil {
		return
	}
	q.progMu.Lock()
	if q.progFrom.IsZero() {
		q.progFrom = now
		q.prog = PromptProgress{Total: len(q.prompt), Cached: cached, Processed: processed}
	} else if processed <= q.prog.Processed || processed > q.prog.Total {
		// a preempted sequence recomputing what it had (Config.KVPool):
		// the figures only grow, and stay the first prompt's
		q.progMu.Unlock()
		return
	}
	q.prog.Processed, q.prog.Elapsed = processed, now.Sub(q.progFrom)
	q.progMu.Unlock()
	select {
	case q.progress <- struct{}{}:
	default:
	}
}

// Generate runs req and calls emit with each piece of text, in order, from
// the caller's goroutine. It returns when the sequence ends, the context is
// done, or the engine closes. Errors before the first emit mean nothing was
// generated: ErrQueueFull, ErrContextWindow, ErrInvalid.
func (e *Engine) Generate(ctx context.Context, req *Request, emit func(string)) (res Result, err error) {
	start := time.Now()
	if req.Operation == "" {
		req.Operation = OperationCompletion
	}
	op := req.Operation
	ctx, span := e.tracer.Start(ctx, op+" "+e.info.Name,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(start),
		trace.WithAttributes(requestAttributes(e.info.Name, op, req)...), trace.WithAttributes(req.Attributes...))
	var captured *strings.Builder
	if req.CaptureContent {
		captured = &strings.Builder{}
		span.SetAttributes(attribute.String("gen_ai.prompt", truncate(req.PromptText(), captureLimit)))
		inner := emit
		emit = func(s string) {
			if captured.Len() < captureLimit {
				captured.WriteString(s)
			}
			inner(s)
		}
	}
	defer func() {
		if captured != nil {
			span.SetAttributes(attribute.String("gen_ai.completion", truncate(captured.String(), captureLimit)))
		}
		res.SpanContext = span.SpanContext()
		if req.Finish != nil {
			span.SetAttributes(req.Finish(&res)...)
		}
		endSpan(ctx, span, e.tracer, e.info.Name, &res, err)
	}()
	res.Enqueued = start

	// admission: a bounded number of requests may be tokenized, wait or
	// run; one over the bound is refused before any work
	limit := int64(e.cfg.Parallel + e.cfg.QueueLength)
	if e.admitted.Add(1) > limit {
		e.admitted.Add(-1)
		return res, ErrQueueFull
	}
	defer e.admitted.Add(-1)

	window := e.cfg.ContextPerSlot
	if req.ContextLimit > 0 && req.ContextLimit < window {
		window = req.ContextLimit
	}
	// tokenization runs on at most tokenizers goroutines at once
	select {
	case e.tokenizers <- struct{}{}:
	case <-ctx.Done():
		return res, ctxErr(ctx)
	}
	prompt, err := e.tokenizeBounded(ctx, req, window)
	<-e.tokenizers
	if errors.Is(err, errPromptOverContext) {
		res.PromptTokens = len(prompt)
		return res, fmt.Errorf("%w: the prompt is over the %d tokens the context holds", ErrContextWindow, window)
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrCancelled) || errors.Is(err, ErrTimeout) {
		return res, err
	}
	if err != nil {
		return res, fmt.Errorf("%w: tokenize prompt: %v", ErrInvalid, err)
	}
	res.PromptTokens = len(prompt)
	if len(prompt) == 0 {
		return res, fmt.Errorf("%w: prompt is empty", ErrInvalid)
	}
	for t := range req.Sampling.LogitBias {
		if t < 0 || t >= e.nVocab {
			return res, fmt.Errorf("%w: logit_bias: token %d is not in the vocabulary (0 to %d)", ErrInvalid, t, e.nVocab-1)
		}
	}
	maxOut := req.MaxTokens
	if maxOut < 0 {
		return res, fmt.Errorf("%w: max_tokens %d is negative", ErrInvalid, maxOut)
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > MaxTopLogprobs {
		return res, fmt.Errorf("%w: top_logprobs %d is not between 0 and %d", ErrInvalid, req.TopLogprobs, MaxTopLogprobs)
	}
	// room is what the slot's context leaves for output; comparing maxOut
	// with it, rather than adding maxOut to the prompt, cannot overflow
	room := window - len(prompt)
	if room <= 0 {
		return res, fmt.Errorf("%w: the prompt is %d tokens; the context holds %d, with room for at least one output token",
			ErrContextWindow, len(prompt), window)
	}
	// max tokens past the room left are clamped to it: the request ends
	// with "length" there (as llama-server and Ollama do)
	if maxOut == 0 || maxOut > room {
		maxOut = room
	}

	var grammar *llama.Grammar
	if req.Grammar != "" {
		if grammar, err = e.newGrammar(req.Grammar); err != nil {
			return res, err
		}
		defer grammar.Free()
	}

	if req.Admit != nil {
		if err := req.Admit(len(prompt), maxOut); err != nil {
			return res, err
		}
	}

	if req.Queued != nil {
		req.Queued()
	}

	seq := &sequence{
		ctx: ctx, req: req, prompt: prompt, maxOut: maxOut,
		out: make(chan output, maxOut+1), done: make(chan struct{}), grammar: grammar,
	}
	seq.res = res
	if req.Progress != nil {
		seq.progress = make(chan struct{}, 1)
	}
	select {
	case e.incoming <- seq:
	case <-e.done:
		return res, ErrClosed
	case <-ctx.Done():
		return res, ctxErr(ctx)
	}

	// while nothing has come out, Idle is called every IdleInterval
	var idle <-chan time.Time
	if req.Idle != nil && req.IdleInterval > 0 {
		t := time.NewTicker(req.IdleInterval)
		defer t.Stop()
		idle = t.C
	}
	// prompt progress, while the prompt is prefilled: the scheduler
	// signals the last figures before it sends the first text
	progress := seq.progress
	var reported PromptProgress
	report := func() {
		seq.progMu.Lock()
		p := seq.prog
		seq.progMu.Unlock()
		if p != reported { // a signal can come after its figures were read
			reported = p
			req.Progress(p)
		}
	}
	lastProgress := func() {
		if progress == nil {
			return
		}
		select {
		case <-progress:
			report()
		default:
		}
		progress = nil
	}
	send := func(o output) {
		if len(o.logprobs) > 0 {
			req.Logprobs(o.logprobs)
		}
		emit(o.text)
	}
	for {
		select {
		case o := <-seq.out:
			idle = nil
			lastProgress()
			send(o)
		case <-progress:
			report()
		case <-idle:
			req.Idle()
		case <-seq.done:
			for {
				select {
				case o := <-seq.out:
					lastProgress()
					send(o)
				default:
					lastProgress()
					return seq.res, seq.err
				}
			}
		case <-ctx.Done():
			// the scheduler notices at its next step and frees the slot;
			// wait for it so the result and slot state are settled
			<-seq.done
			r := seq.res
			if r.Finished.IsZero() {
				r.Finished = time.Now()
			}
			return r, ctxErr(ctx)
		}
	}
}

// tokenizeRequest is req's whole prompt in tokens, unbounded.
func (e *Engine) tokenizeRequest(req *Request) ([]int, error) {
	return e.tokenizeBounded(context.Background(), req, 0)
}

// Template segments ("<|im_start|>user\n", "<|im_end|>\n", ...) recur in
// every chat request, and each llama_tokenize call costs about a millisecond
// whatever the text's length (llama.cpp compiles the Qwen2 pre-tokenizer's
// regular expression on every call). Their tokens are cached: short special
// segments only, up to a fixed number of them.
const (
	segmentCacheMax    = 1024
	segmentCacheMaxLen = 128
)

func (e *Engine) tokenizeSegment(s Segment) ([]int, error) {
	if !s.Special || len(s.Text) > segmentCacheMaxLen {
		return e.tokenize(s.Text, s.Special)
	}
	e.segMu.RLock()
	t, ok := e.segCache[s.Text]
	e.segMu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := e.tokenize(s.Text, true)
	if err != nil {
		return nil, err
	}
	e.segMu.Lock()
	if len(e.segCache) < segmentCacheMax {
		e.segCache[s.Text] = t
	}
	e.segMu.Unlock()
	return t, nil
}

// PromptText is the request's prompt as one string.
func (r *Request) PromptText() string {
	if len(r.Segments) == 0 {
		return r.Prompt
	}
	var b strings.Builder
	for _, s := range r.Segments {
		b.WriteString(s.Text)
	}
	return b.String()
}

// captureLimit bounds the prompt and completion text put on a span.
const captureLimit = 4096

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func requestAttributes(model, op string, req *Request) []attribute.KeyValue {
	a := []attribute.KeyValue{
		attribute.String("gen_ai.operation.name", op),
		attribute.String("gen_ai.provider.name", "qwend"),
		attribute.String("gen_ai.request.model", model),
		attribute.Float64("gen_ai.request.temperature", float64(req.Sampling.Temperature)),
		attribute.Bool("gen_ai.request.stream", req.Stream),
	}
	if req.ID != "" {
		a = append(a, attribute.String("gen_ai.response.id", req.ID))
	}
	if req.MaxTokens > 0 {
		a = append(a, attribute.Int("gen_ai.request.max_tokens", req.MaxTokens))
	}
	// top_p 0 means something (only the most probable token): always set
	a = append(a, attribute.Float64("gen_ai.request.top_p", float64(req.Sampling.TopP)))
	if k := req.Sampling.TopK; k > 0 {
		a = append(a, attribute.Int("gen_ai.request.top_k", k))
	}
	if req.HasSeed {
		a = append(a, attribute.Int64("gen_ai.request.seed", int64(req.Sampling.Seed)))
	}
	return a
}

// endSpan records the result on the inference span, adds the queue, prefill
// and decode child spans from the measured timestamps, and ends it.
func endSpan(ctx context.Context, span trace.Span, tracer trace.Tracer, model string, res *Result, err error) {
	if res.Finished.IsZero() {
		res.Finished = time.Now()
	}
	if !span.IsRecording() {
		span.End(trace.WithTimestamp(res.Finished))
		return
	}
	child := func(name string, from, to time.Time) {
		if from.IsZero() || to.IsZero() || to.Before(from) {
			return
		}
		_, s := tracer.Start(ctx, name, trace.WithTimestamp(from))
		s.End(trace.WithTimestamp(to))
	}
	child("queue", res.Enqueued, res.Admitted)
	child("prefill", res.Admitted, res.FirstToken)
	child("decode", res.FirstToken, res.Finished)

	attrs := []attribute.KeyValue{
		attribute.String("gen_ai.response.model", model),
		attribute.Int("gen_ai.usage.input_tokens", res.PromptTokens),
		attribute.Int("gen_ai.usage.output_tokens", res.OutputTokens),
		attribute.Int("gen_ai.usage.cache_read.input_tokens", res.CachedTokens),
		attribute.Float64("qwend.queue_wait_s", res.QueueWait().Seconds()),
		attribute.Float64("qwend.tokens_per_second", res.TokensPerSecond()),
	}
	if !res.FirstToken.IsZero() {
		attrs = append(attrs, attribute.Float64("qwend.time_to_first_token_s", res.TimeToFirstToken().Seconds()))
	}
	if res.FinishReason != "" {
		attrs = append(attrs, attribute.StringSlice("gen_ai.response.finish_reasons", []string{res.FinishReason}))
	}
	span.SetAttributes(attrs...)
	if err != nil {
		span.SetAttributes(attribute.String("error.type", ErrorType(err)))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(res.Finished))
}
