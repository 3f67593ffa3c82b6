// Package api is qwend's HTTP server: routes, middleware (request id, body
// limit, request timeout, panic recovery), readiness, the error type shared
// by the protocols, and the one place where every inference request ends
// (Server.finish, which hands a Record to the Recorder).
//
// The protocols live in api/openai and api/ollama; each registers its
// routes with Server.Inference and Server.Handle.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/logging"
	"github.com/qwend/qwend/usage"
)

// Config is the server's settings.
type Config struct {
	Model         string // the served model's id
	ContextLength int    // context tokens per slot: the longest prompt plus output
	// Info describes the served model (GET /api/show, /api/tags, /api/ps).
	Info           ModelInfo
	MaxBodyBytes   int64         // largest request body; larger is a 413
	RequestTimeout time.Duration // longest time one request may take; then 504
	// WriteTimeout bounds every write to a client (default 30 s): a client
	// that reads nothing for that long is cut, its generation cancelled
	// and its slot freed (error type client_stalled).
	WriteTimeout time.Duration
	// StallTimeout fails /healthz when the scheduler has made no progress
	// for this long with requests pending (default 2 min), so that an
	// orchestrator restarts the process.
	StallTimeout   time.Duration
	CaptureContent bool         // record prompt and completion text on spans
	Logger         *slog.Logger // diagnostics (panics); nil: slog.Default()
	Recorder       Recorder     // nil: nothing recorded
	Accounting     *Accounting  // nil: no keys, budgets, cost or ledger
	// MetricsNeedKey makes GET /metrics need an API key too, when keys are
	// set (by default Prometheus scrapes it without one).
	MetricsNeedKey bool
	// CORSOrigins are the web origins allowed to call the API from a
	// browser ("*" for any); none: no CORS headers, so browsers refuse
	// cross-origin calls.
	CORSOrigins []string
	// Wrap wraps every route's handler (cmd adds otelhttp here); nil: none.
	Wrap func(pattern string, h http.Handler) http.Handler
}

// Server serves the API. Its engine is set once the model is loaded; until
// then inference routes answer 503 and /readyz says loading.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	eng     atomic.Pointer[engine.Engine]
	ready   atomic.Bool
	created time.Time

	noPriceLogged atomic.Bool
	ignoredKeys   sync.Map // endpoint + " " + key: logged once

	stopCtx  context.Context // cancelled by Abort: in-flight requests end
	abort    context.CancelCauseFunc
	inflight atomic.Int64 // inference requests being served
}

// New returns a server with /healthz and /readyz; the protocols add theirs.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Minute
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if a := cfg.Accounting; a != nil && a.ReserveCap <= 0 {
		c := *a
		c.ReserveCap = 4096
		cfg.Accounting = &c
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 2 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), created: time.Now()}
	s.stopCtx, s.abort = context.WithCancelCause(context.Background())
	s.Handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if e := s.eng.Load(); e != nil {
			if stalled, why := e.Stalled(s.cfg.StallTimeout); stalled {
				WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stalled", "reason": why})
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.Handle("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "model": s.cfg.Model, "context_length": s.cfg.ContextLength})
	})
	s.accountingRoutes()
	s.tokenizeRoutes()
	s.NotFound("/", WriteOpenAIError)
	return s
}

// ServeHTTP serves the routes, with the CORS headers of Config.CORSOrigins.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" && len(s.cfg.CORSOrigins) > 0 {
		allowed := slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin)
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
			if preflight {
				h.Set("Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id, X-Qwend-User, X-Qwend-Feature, X-Qwend-Session, traceparent, tracestate, baggage")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		} else if preflight {
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// requireKey wraps h with the API key check Handle documents.
func (s *Server) requireKey(pattern string, h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.Accounting == nil || s.cfg.Accounting.Keys == nil {
		return h
	}
	switch pattern {
	case "GET /healthz", "GET /readyz", "GET /{$}", "HEAD /{$}":
		return h
	case "GET /metrics":
		if !s.cfg.MetricsNeedKey {
			return h
		}
	}
	if !strings.Contains(pattern, " ") { // a catch-all 404
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var id usage.Identity
		if e := s.authenticate(r, &id); e != nil && e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Bearer")
			if strings.HasPrefix(r.URL.Path, "/api/") {
				WriteJSON(w, e.Status, map[string]string{"error": e.Message}) // Ollama's shape
			} else {
				WriteOpenAIError(w, e)
			}
			return
		}
		h(w, r)
	}
}

// Model is the served model's id.
func (s *Server) Model() string { return s.cfg.Model }

// ModelInfo is what the APIs say of the served model.
type ModelInfo struct {
	Family       string // the GGUF architecture, e.g. "qwen2"
	Parameters   uint64 // parameter count; 0 when the file does not say
	Quantization string // the weights' type, e.g. "Q8_0", "F16"
	Size         int64  // the model file's size, bytes
	Template     string // the chat template (Jinja); "" when none
	// Digest returns "sha256:<hex>" of the model file, or "" while it is
	// being computed (it is read once, in the background).
	Digest func() string
}

// Info is the served model's description.
func (s *Server) Info() ModelInfo { return s.cfg.Info }

// Serves reports whether name names the served model, with or without
// Ollama's ":latest" tag.
func (s *Server) Serves(name string) bool {
	return name == s.cfg.Model || strings.TrimSuffix(name, ":latest") == strings.TrimSuffix(s.cfg.Model, ":latest")
}

// ContextLength is the context per request, in tokens.
func (s *Server) ContextLength() int { return s.cfg.ContextLength }

// Created is when the server was made (the model's "created" time).
func (s *Server) Created() time.Time { return s.created }

// MaxBodyBytes is the body limit.
func (s *Server) MaxBodyBytes() int64 { return s.cfg.MaxBodyBytes }

// CaptureContent says whether prompts and completions go on spans.
func (s *Server) CaptureContent() bool { return s.cfg.CaptureContent }

// SetEngine makes the server ready with e; nil makes it not ready (shutdown).
func (s *Server) SetEngine(e *engine.Engine) {
	s.eng.Store(e)
	s.ready.Store(e != nil)
}

// SetReady marks the server ready or not (not ready while draining).
func (s *Server) SetReady(v bool) { s.ready.Store(v && s.eng.Load() != nil) }

// Engine returns the engine, or nil before the model is loaded.
func (s *Server) Engine() *engine.Engine { return s.eng.Load() }

// Handle registers a plain route (no inference record) behind the request
// id middleware and cfg.Wrap.
//
// With API keys set, the route needs one (401 otherwise), except the
// liveness and readiness probes, Ollama's "GET /", the catch-all 404s and,
// unless Config.MetricsNeedKey, GET /metrics.
func (s *Server) Handle(pattern string, h http.HandlerFunc) {
	s.handle(pattern, s.requireKey(pattern, h))
}

// handle registers h with the request id middleware and cfg.Wrap, and no
// key check (inference and accounting routes check keys themselves, so
// that a refusal is recorded with its identity).
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	var hh http.Handler = logging.Middleware(h)
	if s.cfg.Wrap != nil {
		hh = s.cfg.Wrap(pattern, hh)
	}
	s.mux.Handle(pattern, hh)
}

// InferenceFunc serves one inference request. It fills x.Rec as it learns
// (Request, Result, Stream) and returns an error to be written in the
// protocol's shape, or nil once it has written the response itself (a
// stream that failed after its first byte reports that with x.Fail).
type InferenceFunc func(x *Exchange) *Error

// ErrorWriter writes an error in a protocol's shape.
type ErrorWriter func(w http.ResponseWriter, e *Error)

// Inference registers an inference route: every request to it, whatever
// its outcome (success, 4xx, 429, 5xx, cancelled, timed out, panicked),
// ends in one call of the Recorder.
func (s *Server) Inference(pattern, operation string, writeErr ErrorWriter, h InferenceFunc) {
	s.handle(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		tctx, cancelTimeout := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancelTimeout()
		ctx, cancel := context.WithCancelCause(tctx)
		defer cancel(nil)
		// Abort ends the request: its stream gets a shutdown error event
		defer context.AfterFunc(s.stopCtx, func() { cancel(errShutdown) })()
		sw := &statusWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
		x := &Exchange{W: sw, R: r.WithContext(ctx), srv: s, Rec: Record{
			RequestID: logging.RequestID(r.Context()), Endpoint: pattern, Operation: operation,
			Model: s.cfg.Model, Started: time.Now(),
		}}
		// a client that stops reading is cut: the generation stops, the slot frees
		sw.onTimeout = func() {
			x.Fail(stalledError())
			cancel(errStalled)
		}
		defer s.finish(r.Context(), x, sw, writeErr)
		if e := s.authenticate(r, &x.Rec.Identity); e != nil {
			x.Fail(e)
			if e.Status == http.StatusUnauthorized {
				sw.Header().Set("WWW-Authenticate", "Bearer")
			}
			writeErr(sw, e)
			return
		}
		if e := h(x); e != nil {
			x.Fail(e)
			if !sw.wrote {
				writeErr(sw, e)
			}
		}
	})
}

// finish is the one end of every inference request: it recovers a panic
// into a 500, completes the record and hands it to the Recorder.
func (s *Server) finish(ctx context.Context, x *Exchange, sw *statusWriter, writeErr ErrorWriter) {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler {
			panic(p)
		}
		s.cfg.Logger.ErrorContext(ctx, "panic serving request", "endpoint", x.Rec.Endpoint, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		e := Internal("internal error")
		x.Fail(e)
		if !sw.wrote {
			writeErr(sw, e)
		}
	}
	rec := &x.Rec
	rec.Finished = time.Now()
	rec.Status = sw.status
	if rec.Status == 0 {
		rec.Status = http.StatusOK
	}
	if rec.ErrorType == "" && rec.Status >= 400 {
		rec.ErrorType = KindInternal
	}
	if rec.Request != nil {
		rec.Stream = rec.Request.Stream
	}
	if rec.Identity.User == "" {
		rec.Identity.User = usage.Anonymous
	}
	if rec.Identity.Feature == "" {
		rec.Identity.Feature = rec.Endpoint
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		rec.TraceID = sc.TraceID().String()
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() && rec.ErrorType != "" {
		span.SetAttributes(attribute.String("error.type", rec.ErrorType))
		if rec.Status >= 500 || rec.Status < 400 {
			// otelhttp marks 5xx itself; an error inside a 200 stream it cannot see
			span.SetStatus(codes.Error, rec.ErrorType)
		}
	}
	s.settle(ctx, x)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("user.id", rec.Identity.User))
		if s.cfg.Accounting != nil {
			span.SetAttributes(attribute.Float64("qwend.cost.usd", usage.MicroToUSD(rec.CostMicroUSD)))
		}
	}
	if sc := rec.Result.SpanContext; sc.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, sc)
	}
	s.cfg.Recorder.Record(ctx, rec)
}

// Abort ends every inference request still in flight: each stops
// generating, a stream gets an error event of type shutdown, a request that
// has sent nothing a 503, and each is recorded. It returns how many there
// were. The caller (the drain at its deadline) then closes the connections.
func (s *Server) Abort() int {
	n := int(s.inflight.Load())
	s.abort(errShutdown)
	return n
}

// InFlight is the number of inference requests being served.
func (s *Server) InFlight() int { return int(s.inflight.Load()) }

var (
	errShutdown = errors.New("server shutting down")
	errStalled  = errors.New("client stopped reading")
)

// KindShutdown and KindStalled join the closed set of error kinds.
const (
	KindShutdown = "shutdown"       // 503: cut at the drain deadline
	KindStalled  = "client_stalled" // the client read nothing for --write-timeout
)

func shutdownError() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Kind: KindShutdown, Type: "server_error", Code: KindShutdown,
		Message: "the server is shutting down; the request was cut at the drain deadline", RetryAfter: "5"}
}

func stalledError() *Error {
	return &Error{Status: http.StatusRequestTimeout, Kind: KindStalled, Type: "invalid_request_error", Code: KindStalled,
		Message: "the client read nothing for the write timeout; the request was cut"}
}

// Exchange is one inference request in flight.
type Exchange struct {
	W   http.ResponseWriter
	R   *http.Request // its context carries the request timeout
	Rec Record
	srv *Server

	hold   *usage.Reservation // the budget held while the engine runs
	priced bool
}

// Fail records err as the request's error (the first one wins).
func (x *Exchange) Fail(err error) {
	if err == nil || x.Rec.Err != nil {
		return
	}
	x.Rec.Err = err
	x.Rec.ErrorType = FromEngine(err).Kind
}

// Engine checks the requested model and readiness before any work.
func (x *Exchange) Engine(model string) (*engine.Engine, *Error) {
	s := x.srv
	if model != "" && !s.Serves(model) {
		// 404, as OpenAI and Ollama answer it (the clients raise their
		// not-found error)
		return nil, &Error{Status: http.StatusNotFound, Kind: KindInvalid, Type: "invalid_request_error", Code: CodeModelNotFound,
			Message: fmt.Sprintf("field \"model\": model %q is not served here (serving %q)", model, s.cfg.Model)}
	}
	e := s.eng.Load()
	if e == nil || !s.ready.Load() {
		return nil, &Error{Status: http.StatusServiceUnavailable, Kind: KindUnavailable, Type: engine.ErrorTypeUnavailable, Code: "model_loading", Message: "model is loading; see /readyz"}
	}
	return e, nil
}

// Generate runs req on e and keeps its result in the record.
func (x *Exchange) Generate(e *engine.Engine, req *engine.Request, emit func(string)) (engine.Result, error) {
	x.Rec.Request = req
	x.account(req)
	res, err := e.Generate(x.R.Context(), req, emit)
	x.Rec.Result = res
	if err != nil {
		// a request ended by the server, not the client, says why
		switch context.Cause(x.R.Context()) {
		case errShutdown:
			err = shutdownError()
		case errStalled:
			err = stalledError()
		}
	}
	x.Fail(err)
	return res, err
}

// IgnoredKeys logs, once per endpoint and key, the keys a request sent that
// its type does not define (see Unknown); path prefixes nested ones
// ("options.").
func (x *Exchange) IgnoredKeys(path string, u Unknown) {
	for k := range u {
		if _, seen := x.srv.ignoredKeys.LoadOrStore(x.Rec.Endpoint+" "+path+k, true); !seen {
			x.srv.cfg.Logger.Warn("request key ignored: qwend does not define it", "endpoint", x.Rec.Endpoint, "key", path+k)
		}
	}
}

// Decode reads the request body (at most Config.MaxBodyBytes) into v.
func (x *Exchange) Decode(v any) *Error { return DecodeBody(x.W, x.R, x.srv.cfg.MaxBodyBytes, v) }

// Embed runs e.Embed and keeps what it used in the record: the inputs'
// tokens as prompt tokens, the times.
func (x *Exchange) Embed(e *engine.Engine, inputs []string, truncate bool) ([]engine.Embedding, error) {
	start := time.Now()
	embed := e.Embed
	if truncate {
		embed = e.EmbedTruncated
	}
	out, err := embed(x.R.Context(), inputs)
	res := engine.Result{Enqueued: start, Admitted: start, Finished: time.Now()}
	for _, o := range out {
		res.PromptTokens += o.Tokens
	}
	if err != nil {
		res.Admitted = time.Time{}
	}
	x.Rec.Result = res
	x.Fail(err)
	return out, err
}

// ResponseID is prefix plus the request id (a new one when there is none).
func (x *Exchange) ResponseID(prefix string) string {
	id := x.Rec.RequestID
	if id == "" {
		id = logging.NewRequestID()
	}
	return prefix + id
}

// Server is the server the request came to.
func (x *Exchange) Server() *Server { return x.srv }

// statusWriter remembers the status written and puts a deadline on every
// write; Flush and Unwrap keep streaming and http.ResponseController
// working.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool

	rc        *http.ResponseController
	timeout   time.Duration
	onTimeout func() // a write ran past its deadline: the client is not reading
	timedOut  bool
}

// deadline gives the next write timeout to finish; a write that fails on
// it calls onTimeout once.
func (w *statusWriter) deadline() {
	if w.rc != nil && w.timeout > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

func (w *statusWriter) check(err error) {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !w.timedOut && w.onTimeout != nil {
		w.timedOut = true
		w.onTimeout()
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	w.deadline()
	n, err := w.ResponseWriter.Write(b)
	w.check(err)
	return n, err
}

func (w *statusWriter) Flush() {
	w.deadline()
	if w.rc != nil {
		w.check(w.rc.Flush())
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
