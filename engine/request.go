package engine

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Operation names follow the OpenTelemetry GenAI conventions.
const (
	OperationChat       = "chat"
	OperationCompletion = "text_completion"
	OperationEmbeddings = "embeddings"
)

// Segment is a piece of prompt text. Special segments are template text in
// which control tokens such as <|im_start|> are parsed; the others are
// user content, tokenized as plain text so it cannot forge control tokens.
type Segment struct {
	Text    string
	Special bool
}

// Request is one generation. The prompt is fully rendered (chat templates
// are applied by the caller): Prompt, parsed with special tokens, or
// Segments when it is not empty.
type Request struct {
	ID        string // response id, for spans and logs
	Operation string // OperationChat or OperationCompletion (set by Generate when empty)
	Prompt    string
	Segments  []Segment
	MaxTokens int // 0, or more than the room the prompt leaves: up to the end of the slot's context
	// ContextLimit, when above 0 and below the slot's context, is the
	// context this request may use, prompt and output (Ollama's num_ctx).
	ContextLimit int
	Sampling     SamplingParams
	HasSeed      bool // Sampling.Seed was given by the client
	Stop         []string
	// Grammar, when set, is a GBNF grammar the output must follow (see
	// SchemaGrammar); the generation ends only once it is complete.
	Grammar string
	Stream  bool // recorded only: the engine streams to emit either way
	// CaptureContent records the prompt and the output, truncated, on the
	// inference span.
	CaptureContent bool
	// Logprobs, when set, receives each output token's log probability
	// (see TokenLogprob) and, with TopLogprobs (0 to MaxTopLogprobs), its
	// position's likeliest tokens: in Generate's goroutine, in order, just
	// before the text that holds the token's last byte is emitted. Tokens
	// a stop string cut, and the end-of-generation token, are not passed.
	Logprobs    func([]TokenLogprob)
	TopLogprobs int
	// ReturnTokens puts the token ids of the prompt and the output in
	// Result.Tokens (Ollama's context).
	ReturnTokens bool

	// Attributes go on the inference span when it starts (who asked, for
	// what); nil: none.
	Attributes []attribute.KeyValue
	// Admit, when set, is called once the prompt is tokenized and fits the
	// context, before the request takes a place in the queue, with its
	// prompt tokens and its max tokens (resolved: never 0). An error
	// refuses the request: Generate returns it as is, nothing is run.
	Admit func(promptTokens, maxTokens int) error
	// Queued, when set, is called once the request holds a place in the
	// queue (it will run: no more ErrQueueFull), in Generate's goroutine.
	// A streaming caller sends its status line here.
	Queued func()
	// Idle, when set, is called every IdleInterval while the request waits
	// for a slot or prefills and no text has come out yet, in Generate's
	// goroutine (a stream's keep-alive).
	Idle         func()
	IdleInterval time.Duration
	// Progress, when set, is called in Generate's goroutine while the
	// prompt is prefilled: once when a slot takes the request (Processed
	// equals Cached) and after each decoded chunk of the prompt (at most
	// --batch-size tokens per scheduler step), the last one with Processed
	// equal to Total, always before the first text. Calls may be merged
	// when the caller is slower than the steps; the figures only grow.
	// llama-server's return_progress reports the same.
	Progress func(PromptProgress)
	// Finish, when set, is called once the request is over, before the
	// inference span ends; the attributes it returns go on the span.
	Finish func(res *Result) []attribute.KeyValue
}

// PromptProgress is how far a request's prompt has been prefilled, in
// llama-server's prompt_progress terms (total, cache, processed, time_ms).
type PromptProgress struct {
	Total     int           // prompt tokens
	Cached    int           // of them, reused from the slot's KV cache
	Processed int           // of them, in the KV cache now (cached included)
	Elapsed   time.Duration // since a slot took the request
}

// Finish reasons.
const (
	FinishStop   = "stop"   // end-of-generation token or a stop string
	FinishLength = "length" // max tokens or the slot's context
)

// Result is what one Generate call measured.
type Result struct {
	PromptTokens int
	CachedTokens int // prompt tokens reused from the slot's KV cache
	OutputTokens int
	FinishReason string
	// Tokens are the prompt's token ids followed by the output's (an
	// end-of-generation or control token that ended it excluded), when
	// Request.ReturnTokens asked for them and the request finished.
	Tokens []int

	Enqueued   time.Time // Generate was called
	Admitted   time.Time // a slot took the sequence
	FirstToken time.Time // the first output token was sampled
	Finished   time.Time

	// Compute is the request's share of the scheduler's step time (decode
	// and sampling): each step's wall time divided among its sequences by
	// their tokens in the batch.
	Compute time.Duration

	// SpanContext is the inference span's, so that what the caller records
	// of this result (metrics exemplars, the service log) points at it.
	SpanContext trace.SpanContext
}

// QueueWait is how long the request waited for a slot.
func (r Result) QueueWait() time.Duration { return nonNeg(r.Admitted, r.Enqueued) }

// TimeToFirstToken counts from Generate's call to the first output token.
func (r Result) TimeToFirstToken() time.Duration { return nonNeg(r.FirstToken, r.Enqueued) }

// Duration is the whole request.
func (r Result) Duration() time.Duration { return nonNeg(r.Finished, r.Enqueued) }

// TimePerOutputToken is the mean decode time of the tokens after the first.
func (r Result) TimePerOutputToken() time.Duration {
	if r.OutputTokens < 2 || r.FirstToken.IsZero() {
		return 0
	}
	return nonNeg(r.Finished, r.FirstToken) / time.Duration(r.OutputTokens-1)
}

// TokensPerSecond is output tokens over the whole request time.
func (r Result) TokensPerSecond() float64 {
	d := r.Duration().Seconds()
	if d <= 0 {
		return 0
	}
	return float64(r.OutputTokens) / d
}

func nonNeg(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() || a.Before(b) {
		return 0
	}
	return a.Sub(b)
}

// StepStats describes one scheduler step.
type StepStats struct {
	Sequences    int // sequences in the batch
	Tokens       int // tokens in the batch
	Decode       time.Duration
	Sample       time.Duration
	Send         time.Duration
	PromptTokens int // prefill tokens in the batch
}

// Observer receives the scheduler's measurements: ObserveStep is called
// from the scheduler, once per step, and must not block. What a request did
// is returned by Generate as its Result; the caller records it.
type Observer interface {
	ObserveStep(StepStats)
}

type nopObserver struct{}

func (nopObserver) ObserveStep(StepStats) {}
