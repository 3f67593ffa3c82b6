package engine

import (
	"context"
	"errors"
)

var (
	// ErrQueueFull: every slot is busy and the admission queue is full.
	ErrQueueFull = errors.New("engine: queue full")
	// ErrContextWindow: prompt plus max tokens exceed a slot's context.
	ErrContextWindow = errors.New("engine: context window exceeded")
	// ErrTimeout: the request ran past its deadline.
	ErrTimeout = errors.New("engine: request timed out")
	// ErrCancelled: the caller went away.
	ErrCancelled = errors.New("engine: request cancelled")
	// ErrClosed: the engine is shutting down.
	ErrClosed = errors.New("engine: closed")
	// ErrInvalid: the request cannot be run as given.
	ErrInvalid = errors.New("engine: invalid request")
)

// Error types, a closed set used as the error.type attribute.
const (
	ErrorTypeQueueFull     = "queue_full"
	ErrorTypeContextWindow = "context_window_exceeded"
	ErrorTypeTimeout       = "timeout"
	ErrorTypeCancelled     = "cancelled"
	ErrorTypeUnavailable   = "unavailable"
	ErrorTypeInvalid       = "invalid_request"
	ErrorTypeInternal      = "internal"
)

// ErrorType maps an error from Generate to its error.type value; "" for nil.
// An error with an ErrorType() string method (such as a Request.Admit
// refusal) names its own type.
func ErrorType(err error) string {
	var typed interface{ ErrorType() string }
	switch {
	case err == nil:
		return ""
	case errors.As(err, &typed):
		return typed.ErrorType()
	case errors.Is(err, ErrQueueFull):
		return ErrorTypeQueueFull
	case errors.Is(err, ErrContextWindow):
		return ErrorTypeContextWindow
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ErrorTypeTimeout
	case errors.Is(err, ErrCancelled), errors.Is(err, context.Canceled):
		return ErrorTypeCancelled
	case errors.Is(err, ErrClosed):
		return ErrorTypeUnavailable
	case errors.Is(err, ErrInvalid):
		return ErrorTypeInvalid
	}
	return ErrorTypeInternal
}

// ctxErr turns a finished context into the engine's error.
func ctxErr(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ErrCancelled
}
