package logging

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Inference is one line of the service log, with the fields of the service
// log contract: event, status, timestamp, request_id, latency_ms,
// tokens_generated, tokens_per_second, prompt_tokens, max_new_tokens,
// temperature and gpu, plus trace_id, span_id, model and error_type.
type Inference struct {
	Time            time.Time
	Model           string
	Operation       string
	Endpoint        string // the route, e.g. "POST /v1/chat/completions"
	HTTPStatus      int    // the status sent; 0: not recorded
	Status          string // "success" or "error"
	ErrorType       string
	Latency         time.Duration
	TokensGenerated int
	TokensPerSecond float64
	PromptTokens    int
	CachedTokens    int
	MaxNewTokens    int
	Temperature     float64
	FinishReason    string
	User            string  // who asked; "" omits the field
	Feature         string  // for what
	CostUSD         float64 // what it cost under the prices, in US dollars
	GPU             any     // marshalled as JSON: the NVML snapshot or its fallback
}

// ServiceLog writes one JSON line per inference through the correlating
// slog handler.
type ServiceLog struct {
	h slog.Handler
}

// NewServiceLog writes to w. Lines carry "timestamp" (ISO 8601, UTC) and
// "event" in place of slog's time and msg, and no level.
func NewServiceLog(w io.Writer) *ServiceLog {
	opts := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			return slog.String("timestamp", a.Value.Time().UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
		case slog.MessageKey:
			return slog.Attr{Key: "event", Value: a.Value}
		case slog.LevelKey:
			return slog.Attr{}
		}
		return a
	}}
	return &ServiceLog{h: NewJSONHandler(w, opts)}
}

// Inference writes one line; trace_id, span_id and request_id come from ctx.
func (l *ServiceLog) Inference(ctx context.Context, in Inference) {
	if l == nil {
		return
	}
	r := slog.NewRecord(in.Time, slog.LevelInfo, "inference", 0)
	r.AddAttrs(
		slog.String("status", in.Status),
		slog.String("model", in.Model),
		slog.String("operation", in.Operation),
	)
	if in.Endpoint != "" {
		r.AddAttrs(slog.String("endpoint", in.Endpoint))
	}
	if in.HTTPStatus != 0 {
		r.AddAttrs(slog.Int("http_status", in.HTTPStatus))
	}
	r.AddAttrs(
		slog.Float64("latency_ms", float64(in.Latency.Microseconds())/1000),
		slog.Int("tokens_generated", in.TokensGenerated),
		slog.Float64("tokens_per_second", round(in.TokensPerSecond, 3)),
		slog.Int("prompt_tokens", in.PromptTokens),
		slog.Int("cached_tokens", in.CachedTokens),
		slog.Int("max_new_tokens", in.MaxNewTokens),
		slog.Float64("temperature", in.Temperature),
	)
	if in.FinishReason != "" {
		r.AddAttrs(slog.String("finish_reason", in.FinishReason))
	}
	if in.ErrorType != "" {
		r.AddAttrs(slog.String("error_type", in.ErrorType))
	}
	if in.User != "" {
		r.AddAttrs(slog.String("user", in.User), slog.String("feature", in.Feature), slog.Float64("cost_usd", round(in.CostUSD, 6)))
	}
	r.AddAttrs(slog.Any("gpu", in.GPU))
	_ = l.h.Handle(ctx, r)
}

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
