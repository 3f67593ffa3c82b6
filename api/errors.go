package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/usage"
)

// Error kinds: the closed set of error.type values that metrics, spans, the
// service log and /metrics JSON share. The engine's kinds (engine.ErrorType*)
// are the same strings.
const (
	KindInvalid       = engine.ErrorTypeInvalid       // 400, 413: the request cannot be served as sent
	KindContextWindow = engine.ErrorTypeContextWindow // 400: prompt plus max tokens exceed a slot
	KindQueueFull     = engine.ErrorTypeQueueFull     // 429
	KindTimeout       = engine.ErrorTypeTimeout       // 504: --request-timeout passed
	KindCancelled     = engine.ErrorTypeCancelled     // 499: the client went away
	KindUnavailable   = engine.ErrorTypeUnavailable   // 503: loading or shutting down
	KindInternal      = engine.ErrorTypeInternal      // 500
	// KindUnauthorized (401) and KindBudget (429) are in accounting.go.
)

// Error is an API error: an HTTP status, a kind from the closed set above,
// and what the client reads. Protocol packages turn it into their own error
// shape.
type Error struct {
	Status  int    // HTTP status
	Kind    string // one of the Kind* constants
	Type    string // OpenAI's error.type ("invalid_request_error", ...)
	Code    string // OpenAI's error.code; "" for none
	Message string
	// Budget, on a budget_exceeded refusal: limit_usd, limit_tokens,
	// spent_usd, spent_tokens, reset_at (RFC 3339).
	Budget map[string]any
	// RetryAfter overrides the Retry-After header (seconds).
	RetryAfter string
}

func (e *Error) Error() string { return e.Message }

// BadRequest is a 400 of kind invalid_request; the message names the field.
func BadRequest(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Kind: KindInvalid, Type: "invalid_request_error", Message: fmt.Sprintf(format, a...)}
}

// Internal is a 500.
func Internal(msg string) *Error {
	return &Error{Status: http.StatusInternalServerError, Kind: KindInternal, Type: "server_error", Code: KindInternal, Message: msg}
}

// FromEngine maps an error of engine.Generate to its status and kind.
func FromEngine(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var be *usage.BudgetError
	if errors.As(err, &be) {
		return budgetRefusal(be)
	}
	t := engine.ErrorType(err)
	switch {
	case errors.Is(err, engine.ErrQueueFull):
		return &Error{Status: http.StatusTooManyRequests, Kind: t, Type: t, Code: t, Message: "server busy: every slot and queue place is taken; retry later"}
	case errors.Is(err, engine.ErrContextWindow):
		// OpenAI's type and code for a prompt over the context
		return &Error{Status: http.StatusBadRequest, Kind: t, Type: "invalid_request_error", Code: "context_length_exceeded",
			Message: strings.TrimPrefix(err.Error(), "engine: context window exceeded: ")}
	case errors.Is(err, engine.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Kind: t, Type: "invalid_request_error", Code: t,
			Message: strings.TrimPrefix(err.Error(), "engine: invalid request: ")}
	case t == engine.ErrorTypeTimeout:
		return &Error{Status: http.StatusGatewayTimeout, Kind: t, Type: t, Code: t, Message: "request timed out"}
	case t == engine.ErrorTypeCancelled:
		return &Error{Status: 499, Kind: t, Type: t, Code: t, Message: "request cancelled"}
	case errors.Is(err, engine.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Kind: t, Type: t, Code: t, Message: "server shutting down"}
	}
	return &Error{Status: http.StatusInternalServerError, Kind: KindInternal, Type: "internal_error", Code: t, Message: err.Error()}
}

// ErrorBody is OpenAI's error shape: {"error":{"message","type","code"}}.
type ErrorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"` // OpenAI's: the parameter at fault; always null here (the message names it)
		Code    *string `json:"code"`
		// Budget is set on budget_exceeded: the limit, the spend, the reset.
		Budget map[string]any `json:"budget,omitempty"`
	} `json:"error"`
}

// OpenAIErrorBody returns e in OpenAI's error shape.
func OpenAIErrorBody(e *Error) ErrorBody {
	var b ErrorBody
	b.Error.Message, b.Error.Type, b.Error.Budget = e.Message, e.Type, e.Budget
	if e.Code != "" {
		b.Error.Code = &e.Code
	}
	return b
}

// WriteOpenAIError writes e in OpenAI's error shape, with Retry-After on
// 429 (1 s) and 503 (5 s).
func WriteOpenAIError(w http.ResponseWriter, e *Error) {
	SetRetryAfter(w, e)
	WriteJSON(w, e.Status, OpenAIErrorBody(e))
}

// SetRetryAfter sets Retry-After for the statuses a client should retry.
func SetRetryAfter(w http.ResponseWriter, e *Error) {
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
		return
	}
	switch e.Status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
}

// WriteJSON writes v as the JSON body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
