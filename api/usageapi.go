package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/qwend/qwend/logging"
	"github.com/qwend/qwend/usage"
)

// FeedbackRecorder is told of each new feedback (otel.Observer counts them
// by label); the Recorder may implement it.
type FeedbackRecorder interface {
	RecordFeedback(ctx context.Context, label string)
}

// accountingRoutes adds POST /v1/feedback and GET /v1/usage/daily.
func (s *Server) accountingRoutes() {
	s.handle("POST /v1/feedback", s.authenticated(s.feedback))
	s.handle("GET /v1/usage/daily", s.authenticated(s.usageDaily))
}

// authenticated runs h for an authenticated caller; 401 (or 400 for a bad
// identity header) otherwise, and 404 when there is no ledger database.
func (s *Server) authenticated(h func(w http.ResponseWriter, r *http.Request, id *usage.Identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Accounting == nil || s.cfg.Accounting.Store == nil {
			WriteOpenAIError(w, &Error{Status: http.StatusNotFound, Kind: KindInvalid, Type: "invalid_request_error", Code: "not_found",
				Message: "the usage ledger is off (--ledger off)"})
			return
		}
		var id usage.Identity
		if e := s.authenticate(r, &id); e != nil {
			if e.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", "Bearer")
			}
			WriteOpenAIError(w, e)
			return
		}
		if id.User == "" {
			id.User = usage.Anonymous
		}
		h(w, r, &id)
	}
}

// FeedbackRequest is the body of POST /v1/feedback.
type FeedbackRequest struct {
	RequestID string   `json:"request_id"` // the X-Request-Id or the response's id
	Score     *int     `json:"score"`      // 1 or -1
	Label     string   `json:"label"`      // "up" or "down" (score 1 or -1)
	Value     *float64 `json:"value"`      // optional, 0..1
	Comment   string   `json:"comment"`    // optional, at most 4096 bytes
	ID        string   `json:"id"`         // optional idempotency key
}

// feedback stores a judgement of a response: 201 when new, 200 when its id
// was given before (nothing changes), 404 for an unknown request.
func (s *Server) feedback(w http.ResponseWriter, r *http.Request, caller *usage.Identity) {
	acc := s.cfg.Accounting
	var in FeedbackRequest
	if e := DecodeBody(w, r, min(s.cfg.MaxBodyBytes, 64<<10), &in); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	f, e := in.validate()
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	ctx := r.Context()
	row, found, err := acc.Store.LookupRequest(ctx, in.RequestID)
	if err == nil && !found && acc.Ledger != nil {
		// the request may have ended a moment ago: commit what is queued
		if acc.Ledger.Flush(ctx) == nil {
			row, found, err = acc.Store.LookupRequest(ctx, in.RequestID)
		}
	}
	if err != nil {
		WriteOpenAIError(w, &Error{Status: http.StatusServiceUnavailable, Kind: KindUnavailable, Type: "server_error", Message: "ledger: " + err.Error()})
		return
	}
	// with keys, a caller judges only its own user's requests (an admin any)
	if !found || caller.Keyed && !caller.Admin && row.User != caller.User {
		WriteOpenAIError(w, &Error{Status: http.StatusNotFound, Kind: KindInvalid, Type: "invalid_request_error", Code: "request_not_found",
			Message: "field \"request_id\": no request " + in.RequestID + " in the ledger"})
		return
	}
	f.RequestID, f.User, f.Feature, f.Time = row.RequestID, row.User, row.Feature, time.Now().UTC()
	created, err := acc.Store.AddFeedback(ctx, f)
	if err != nil {
		WriteOpenAIError(w, &Error{Status: http.StatusServiceUnavailable, Kind: KindUnavailable, Type: "server_error", Message: "ledger: " + err.Error()})
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.emitFeedback(ctx, row, f)
	}
	WriteJSON(w, status, map[string]any{"id": f.ID, "object": "feedback", "request_id": row.RequestID,
		"response_id": row.ResponseID, "score": f.Score, "label": f.Label})
}

func (in *FeedbackRequest) validate() (usage.Feedback, *Error) {
	var f usage.Feedback
	if in.RequestID == "" {
		return f, BadRequest("field \"request_id\": required (the X-Request-Id or the response's id)")
	}
	if err := usage.CheckID("request_id", in.RequestID); err != nil {
		return f, BadRequest("%s", err.Error())
	}
	switch in.Label {
	case "":
	case "up":
		f.Score = 1
	case "down":
		f.Score = -1
	default:
		return f, BadRequest("field \"label\": %q is not up or down", in.Label)
	}
	if in.Score != nil {
		if *in.Score != 1 && *in.Score != -1 {
			return f, BadRequest("field \"score\": %d is not 1 or -1", *in.Score)
		}
		if f.Score != 0 && f.Score != *in.Score {
			return f, BadRequest("field \"score\": %d disagrees with label %q", *in.Score, in.Label)
		}
		f.Score = *in.Score
	}
	if f.Score == 0 {
		return f, BadRequest("field \"score\": required (1 or -1), or a label (up or down)")
	}
	f.Label = map[int]string{1: "up", -1: "down"}[f.Score]
	if in.Value != nil && (*in.Value < 0 || *in.Value > 1) {
		return f, BadRequest("field \"value\": %g is not in [0, 1]", *in.Value)
	}
	if len(in.Comment) > 4096 {
		return f, BadRequest("field \"comment\": longer than 4096 bytes")
	}
	f.Value, f.Comment, f.ID = in.Value, in.Comment, in.ID
	if f.ID == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		f.ID = "fb-" + hex.EncodeToString(b)
	} else if err := usage.CheckID("id", f.ID); err != nil {
		return f, BadRequest("%s", err.Error())
	}
	return f, nil
}

// emitFeedback sends the gen_ai.evaluation.result event, in the judged
// request's trace, and counts it.
func (s *Server) emitFeedback(ctx context.Context, row usage.Row, f usage.Feedback) {
	if fr, ok := s.cfg.Recorder.(FeedbackRecorder); ok {
		fr.RecordFeedback(ctx, f.Label)
	}
	ev := s.cfg.Accounting.Events
	if ev == nil {
		return
	}
	ectx := ctx
	if tid, err := trace.TraceIDFromHex(row.TraceID); err == nil {
		// the record carries the judged request's trace id; its span id is
		// this feedback request's own server span (the ledger keeps no span id)
		sid := trace.SpanContextFromContext(ctx).SpanID()
		if !sid.IsValid() {
			_, _ = rand.Read(sid[:])
		}
		ectx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	}
	var rec otellog.Record
	rec.SetEventName("gen_ai.evaluation.result")
	rec.SetTimestamp(f.Time)
	rec.SetSeverity(otellog.SeverityInfo)
	rec.AddAttributes(
		attribute.String("gen_ai.evaluation.name", "user_feedback"),
		attribute.Float64("gen_ai.evaluation.score.value", float64(f.Score)),
		attribute.String("gen_ai.evaluation.score.label", f.Label),
		attribute.String("gen_ai.response.id", row.ResponseID),
		attribute.String("qwend.request_id", row.RequestID),
		attribute.String("qwend.feedback.id", f.ID),
		attribute.String("qwend.feature", row.Feature),
	)
	if f.Comment != "" {
		rec.AddAttributes(attribute.String("gen_ai.evaluation.explanation", f.Comment))
	}
	if f.Value != nil {
		rec.AddAttributes(attribute.Float64("qwend.feedback.value", *f.Value))
	}
	ev.Emit(ectx, rec)
}

// usageDaily answers GET /v1/usage/daily?date=YYYY-MM-DD (or from=..&to=..)
// &group_by=user|feature|model from the ledger's daily rollup: {"object":
// "list", "from", "to", "group_by", "data": [{"<group_by>": key,
// "requests", "errors", "prompt_tokens", "cached_tokens",
// "completion_tokens", "cost_usd"}]}. With keys, only an admin key sees
// every user; another key sees its own user.
func (s *Server) usageDaily(w http.ResponseWriter, r *http.Request, caller *usage.Identity) {
	acc := s.cfg.Accounting
	q := r.URL.Query()
	today := usage.Day(time.Now())
	from, to := q.Get("from"), q.Get("to")
	if d := q.Get("date"); d != "" {
		if from != "" || to != "" {
			WriteOpenAIError(w, BadRequest("parameter \"date\": give date, or from and to, not both"))
			return
		}
		from, to = d, d
	}
	// check what was given, by the name it was given under, then default
	for _, p := range []struct{ name, v string }{{"date", q.Get("date")}, {"from", q.Get("from")}, {"to", q.Get("to")}} {
		if _, err := time.Parse("2006-01-02", p.v); p.v != "" && err != nil {
			WriteOpenAIError(w, BadRequest("parameter %q: %q is not a day (YYYY-MM-DD)", p.name, p.v))
			return
		}
	}
	switch {
	case from == "" && to == "":
		from, to = today, today
	case from == "":
		from = to
	case to == "":
		to = max(from, today)
	}
	if to < from {
		WriteOpenAIError(w, BadRequest("parameter \"to\": %s is before from %s", to, from))
		return
	}
	group := usage.GroupBy(q.Get("group_by"))
	switch group {
	case "":
		group = usage.ByUser
	case usage.ByUser, usage.ByFeature, usage.ByModel:
	default:
		WriteOpenAIError(w, BadRequest("parameter \"group_by\": %q is not user, feature or model", group))
		return
	}
	query := usage.Query{From: from, To: to, GroupBy: group}
	if caller.Keyed && !caller.Admin {
		query.User = caller.User
	}
	if acc.Ledger != nil {
		_ = acc.Ledger.Flush(r.Context()) // include what just ended; on error, what is committed
	}
	groups, err := acc.Store.Daily(r.Context(), query)
	if err != nil {
		if errors.Is(err, usage.ErrInvalid) {
			WriteOpenAIError(w, BadRequest("%s", err.Error()))
			return
		}
		s.cfg.Logger.ErrorContext(r.Context(), "usage query", "error", err, "request_id", logging.RequestID(r.Context()))
		WriteOpenAIError(w, &Error{Status: http.StatusServiceUnavailable, Kind: KindUnavailable, Type: "server_error", Message: "ledger: " + err.Error()})
		return
	}
	data := make([]map[string]any, 0, len(groups))
	for _, g := range groups {
		data = append(data, map[string]any{string(group): g.Key, "requests": g.Requests, "errors": g.Errors,
			"prompt_tokens": g.PromptTokens, "cached_tokens": g.CachedTokens, "completion_tokens": g.CompletionTokens,
			"cost_usd": usage.MicroToUSD(g.CostMicroUSD)})
	}
	WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "from": from, "to": to, "group_by": group, "data": data})
}
