package api

import (
	"context"
	"time"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/usage"
)

// Record is what one API request did, from its arrival to its last byte:
// the single result from which the service log line, the request metrics
// and the /metrics JSON are written, so they cannot disagree.
type Record struct {
	RequestID string // X-Request-Id
	Endpoint  string // the route pattern, e.g. "POST /v1/chat/completions"
	Operation string // engine.OperationChat or engine.OperationCompletion
	Model     string // the served model's name (the only model value recorded)
	Stream    bool

	Status    int    // HTTP status sent (200 also for a stream that failed after its first byte)
	ErrorType string // "" on success, else one of the Kind* constants
	Err       error  // the error, for the span's status; nil on success

	// Request is what was asked of the engine; nil when the request was
	// refused before it was mapped to one (a 400 from decoding, say).
	Request *engine.Request
	// Result holds the token counts (prompt, cached, completion) and the
	// times (enqueued, admitted, first token, finished); zero when the engine
	// was never called.
	Result engine.Result

	Started  time.Time // the handler was entered
	Finished time.Time // the response was written

	// Identity is who asked and for what: user, end user, feature, session
	// (the user is "anonymous" when nothing names one).
	Identity usage.Identity
	// CostMicroUSD is the request's cost in micro-dollars under
	// PriceVersion; 0 without prices.
	CostMicroUSD int64
	PriceVersion string
	TraceID      string // the request's W3C trace id; "" when not traced
}

// Succeeded reports whether the request ended without an error.
func (r *Record) Succeeded() bool { return r.ErrorType == "" }

// Duration is the whole request, from arrival to the last byte written.
func (r *Record) Duration() time.Duration {
	if r.Finished.Before(r.Started) {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// Recorder receives every finished API request once, in the request's
// goroutine, with its context (carrying the inference span when the engine
// ran, else the HTTP server span). It must not keep rec.
type Recorder interface {
	Record(ctx context.Context, rec *Record)
}

type nopRecorder struct{}

func (nopRecorder) Record(context.Context, *Record) {}
