package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/usage"
)

// Accounting makes the server account for who uses it: API keys, the
// request's identity, daily budgets, cost and the ledger. A nil
// *Accounting (the Config default) authenticates nobody, limits nothing
// and records no ledger rows; identity still comes from the request.
type Accounting struct {
	// Keys, when set, makes every API request present
	// "Authorization: Bearer <key>"; the key's user is the request's user.
	Keys *usage.Keyring
	// Budgets enforces DefaultLimit, or the key's own limit; nil: none.
	Budgets      *usage.Budgets
	DefaultLimit usage.Limit
	// ReserveCap bounds the max_tokens counted in a budget reservation
	// (default 4096): a request's hold is its prompt tokens plus
	// min(max_tokens, ReserveCap).
	ReserveCap int
	// Prices prices each request; nil: every cost is 0.
	Prices *usage.Prices
	// Ledger takes one row per inference request; nil: no ledger.
	Ledger Ledger
	// Store is the ledger database behind POST /v1/feedback and GET
	// /v1/usage/daily; nil: those routes answer 404.
	Store usage.Store
	// Events receives the gen_ai.evaluation.result log record of each
	// feedback; nil: none.
	Events otellog.Logger
}

// Ledger takes ledger rows off the request path (usage.Writer satisfies
// it). Flush commits what was added before it, so that a read right after
// a request sees it.
type Ledger interface {
	Add(usage.Row)
	Flush(ctx context.Context) error
}

// Identity headers.
const (
	HeaderUser    = "X-Qwend-User"
	HeaderFeature = "X-Qwend-Feature"
	HeaderSession = "X-Qwend-Session"
)

// KindUnauthorized and KindBudget join the closed set of error kinds.
const (
	KindUnauthorized = "unauthorized"    // 401: no key, or an unknown one
	KindBudget       = "budget_exceeded" // 429: the user's daily budget is spent
)

// authenticate resolves the caller from the bearer key (when keys are
// set) and the identity headers; it runs before the body is read.
func (s *Server) authenticate(r *http.Request, id *usage.Identity) *Error {
	acc := s.cfg.Accounting
	if acc != nil && acc.Keys != nil {
		// the scheme is case-insensitive (RFC 9110 11.1)
		scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		k, found := acc.Keys.Lookup(strings.TrimSpace(secret))
		if !ok || !found {
			return &Error{Status: http.StatusUnauthorized, Kind: KindUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "missing or unknown API key: send Authorization: Bearer <key>"}
		}
		id.User, id.Keyed, id.Admin = k.User, true, k.Admin
		id.KeyUSD, id.KeyTok = k.DailyUSD, k.DailyTokens
	}
	for _, h := range []struct {
		name string
		dst  *string
	}{{HeaderUser, nil}, {HeaderFeature, &id.Feature}, {HeaderSession, &id.Session}} {
		v := r.Header.Get(h.name)
		if v == "" {
			continue
		}
		if err := usage.CheckID(h.name, v); err != nil {
			return BadRequest("header %s", strings.TrimPrefix(err.Error(), "field "))
		}
		switch {
		case h.dst != nil:
			*h.dst = v
		case id.Keyed:
			id.EndUser = v // a keyed caller names the user it acts for
		default:
			id.User = v
		}
	}
	return nil
}

// BodyIdentity is what a request body says of who sent it: OpenAI's
// user and safety_identifier fields, and its metadata.user_id and
// metadata.feature.
type BodyIdentity struct {
	User, SafetyIdentifier, MetadataUserID, MetadataFeature string
}

// Identify completes the request's identity from its body: without a key,
// the user is X-Qwend-User, else user, else safety_identifier, else
// metadata.user_id, else "anonymous"; with a key, the first of those the
// request names is kept as the end user. The feature is X-Qwend-Feature,
// else metadata.feature, else the endpoint. A malformed identifier is a 400
// naming its field.
func (x *Exchange) Identify(b BodyIdentity) *Error {
	for _, f := range []struct{ name, v string }{
		{"user", b.User}, {"safety_identifier", b.SafetyIdentifier},
		{"metadata.user_id", b.MetadataUserID}, {"metadata.feature", b.MetadataFeature},
	} {
		if f.v != "" {
			if err := usage.CheckID(f.name, f.v); err != nil {
				return BadRequest("%s", err.Error())
			}
		}
	}
	id := &x.Rec.Identity
	named := firstNonEmpty(b.User, b.SafetyIdentifier, b.MetadataUserID)
	switch {
	case id.Keyed && id.EndUser == "":
		id.EndUser = named
	case !id.Keyed && id.User == "":
		id.User = named
	}
	if id.Feature == "" {
		id.Feature = b.MetadataFeature
	}
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// limit is the caller's daily budget: the key's, else the default.
func (s *Server) limit(id *usage.Identity) usage.Limit {
	acc := s.cfg.Accounting
	l := acc.DefaultLimit
	if id.KeyUSD > 0 {
		l.MicroUSD = int64(id.KeyUSD * 1e6)
	}
	if id.KeyTok > 0 {
		l.Tokens = id.KeyTok
	}
	return l
}

// account hooks the budget and the cost into req before it runs: the
// engine calls Admit once the prompt is tokenized (the reservation is its
// prompt tokens plus max_tokens, capped) and Finish before the inference
// span ends (the cost goes on it).
func (x *Exchange) account(req *engine.Request) {
	acc := x.srv.cfg.Accounting
	if acc == nil {
		return
	}
	id := &x.Rec.Identity
	req.Attributes = append(req.Attributes, attribute.String("user.id", userOf(id)))
	if id.Feature != "" {
		req.Attributes = append(req.Attributes, attribute.String("qwend.feature", id.Feature))
	}
	if id.Session != "" {
		req.Attributes = append(req.Attributes, attribute.String("session.id", id.Session))
	}
	if acc.Budgets != nil {
		if limit := x.srv.limit(id); !limit.None() {
			ctx := x.R.Context()
			req.Admit = func(promptTokens, maxTokens int) error {
				capped := min(maxTokens, acc.ReserveCap)
				if capped <= 0 {
					capped = acc.ReserveCap
				}
				est := usage.Spend{Tokens: int64(promptTokens + capped)}
				est.MicroUSD, _, _ = acc.Prices.Cost(usage.Usage{Model: x.Rec.Model, PromptTokens: int64(promptTokens), OutputTokens: int64(capped)})
				hold, err := acc.Budgets.Reserve(ctx, userOf(id), limit, est)
				var be *usage.BudgetError
				if errors.As(err, &be) {
					return budgetError{be}
				}
				if err != nil {
					x.srv.cfg.Logger.WarnContext(ctx, "budget: admitted without the ledger's spend", "error", err)
				}
				x.hold = hold
				return nil
			}
		}
	}
	req.Finish = func(res *engine.Result) []attribute.KeyValue {
		x.price(res)
		return []attribute.KeyValue{attribute.Float64("qwend.cost.usd", usage.MicroToUSD(x.Rec.CostMicroUSD))}
	}
}

// price sets the record's cost from res (once).
func (x *Exchange) price(res *engine.Result) {
	acc := x.srv.cfg.Accounting
	if acc == nil || x.priced {
		return
	}
	x.priced = true
	c, v, err := acc.Prices.Cost(used(x.Rec.Model, res))
	if err != nil && !x.srv.noPriceLogged.Swap(true) {
		x.srv.cfg.Logger.Warn("cost: no price for the model; counted as 0", "model", x.Rec.Model)
	}
	x.Rec.CostMicroUSD, x.Rec.PriceVersion = c, v
}

// used is what res consumed: nothing unless a slot took the request (a
// request refused before that processed no tokens).
func used(model string, res *engine.Result) usage.Usage {
	if res.Admitted.IsZero() {
		return usage.Usage{Model: model}
	}
	return usage.Usage{Model: model, PromptTokens: int64(res.PromptTokens), CachedTokens: int64(res.CachedTokens),
		OutputTokens: int64(res.OutputTokens), Compute: res.Compute}
}

func userOf(id *usage.Identity) string {
	if id.User == "" {
		return usage.Anonymous
	}
	return id.User
}

// budgetError is a budget refusal as the engine returns it.
type budgetError struct{ *usage.BudgetError }

// ErrorType makes the engine record the refusal as budget_exceeded.
func (budgetError) ErrorType() string { return KindBudget }

func (e budgetError) Unwrap() error { return e.BudgetError }

// budgetRefusal is the 429 for a spent budget: Retry-After is the seconds
// to the next UTC midnight, and the body says the limit, the spend and the
// reset time.
func budgetRefusal(be *usage.BudgetError) *Error {
	details := map[string]any{"reset_at": be.ResetAt.UTC().Format(time.RFC3339),
		"spent_usd": usage.MicroToUSD(be.Spent.MicroUSD), "spent_tokens": be.Spent.Tokens}
	if be.Limit.MicroUSD > 0 {
		details["limit_usd"] = usage.MicroToUSD(be.Limit.MicroUSD)
	}
	if be.Limit.Tokens > 0 {
		details["limit_tokens"] = be.Limit.Tokens
	}
	return &Error{Status: http.StatusTooManyRequests, Kind: KindBudget, Type: KindBudget, Code: KindBudget,
		Message: be.Error(), Budget: details,
		RetryAfter: strconv.Itoa(max(1, int(time.Until(be.ResetAt).Seconds()+0.999)))}
}

// settle ends the request's accounting: the budget hold becomes what it
// used, and the ledger gets its row.
func (s *Server) settle(ctx context.Context, x *Exchange) {
	acc := s.cfg.Accounting
	if acc == nil {
		return
	}
	rec := &x.Rec
	x.price(&rec.Result)
	u := used(rec.Model, &rec.Result)
	x.hold.Settle(usage.Spend{MicroUSD: rec.CostMicroUSD, Tokens: u.PromptTokens + u.OutputTokens})
	if acc.Ledger == nil {
		return
	}
	row := usage.Row{
		RequestID: rec.RequestID, Time: rec.Finished.UTC(), User: userOf(&rec.Identity), EndUser: rec.Identity.EndUser,
		Feature: rec.Identity.Feature, Session: rec.Identity.Session, Model: rec.Model, Endpoint: rec.Endpoint,
		PromptTokens: u.PromptTokens, CachedTokens: u.CachedTokens, CompletionTokens: u.OutputTokens,
		LatencyMS: float64(rec.Duration().Microseconds()) / 1000, Status: rec.Status, ErrorType: rec.ErrorType,
		CostMicroUSD: rec.CostMicroUSD, PriceVersion: rec.PriceVersion, ComputeSeconds: u.Compute.Seconds(),
		TraceID: rec.TraceID,
	}
	if rec.Request != nil {
		row.ResponseID = rec.Request.ID
	}
	if res := &rec.Result; !res.FirstToken.IsZero() {
		row.TTFTMS = float64(res.TimeToFirstToken().Microseconds()) / 1000
	}
	row.Day = usage.Day(row.Time)
	acc.Ledger.Add(row)
}
