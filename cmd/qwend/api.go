package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/logging"
)

// apiError is an error with its HTTP status and OpenAI error type.
type apiError struct {
	Status  int
	Type    string
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: fmt.Sprintf(format, a...)}
}

// engineError maps the engine's errors to HTTP.
func engineError(err error) *apiError {
	t := engine.ErrorType(err)
	switch {
	case errors.Is(err, engine.ErrQueueFull):
		return &apiError{Status: http.StatusTooManyRequests, Type: t, Code: t, Message: "server busy: every slot and queue place is taken; retry later"}
	case errors.Is(err, engine.ErrContextWindow):
		return &apiError{Status: http.StatusBadRequest, Type: t, Code: t, Message: err.Error()}
	case errors.Is(err, engine.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: t, Message: err.Error()}
	case errors.Is(err, engine.ErrTimeout):
		return &apiError{Status: http.StatusGatewayTimeout, Type: t, Code: t, Message: "request timed out"}
	case errors.Is(err, engine.ErrCancelled):
		return &apiError{Status: 499, Type: t, Code: t, Message: "request cancelled"}
	case errors.Is(err, engine.ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Type: t, Code: t, Message: "server shutting down"}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "internal_error", Code: t, Message: err.Error()}
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func errorJSON(e *apiError) errorBody {
	var b errorBody
	b.Error.Message, b.Error.Type = e.Message, e.Type
	if e.Code != "" {
		b.Error.Code = &e.Code
	}
	return b
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, e.Status, errorJSON(e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads one JSON object, size limited, and names the field at
// fault in its error.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	body := http.MaxBytesReader(w, r.Body, limit)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Message: fmt.Sprintf("request body over %d bytes", limit)}
		}
		return badRequest("read body: %v", err)
	}
	return decodeJSON(data, v)
}

func decodeJSON(data []byte, v any) *apiError {
	if len(strings.TrimSpace(string(data))) == 0 {
		return badRequest("request body is empty; want a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var fe *fieldError
		switch {
		case errors.As(err, &fe):
			return badRequest("%s", fe.Error())
		case errors.As(err, &te):
			return badRequest("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		case errors.As(err, &se):
			return badRequest("malformed JSON at byte %d: %v", se.Offset, err)
		}
		return badRequest("malformed JSON: %v", err)
	}
	return nil
}

// fieldError names a field whose value decoded but is not acceptable.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return fmt.Sprintf("field %q: %s", e.field, e.msg) }

// stopList accepts a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return &fieldError{"stop", "want a string or an array of strings"}
	}
	*s = many
	return nil
}

// routes registers the API.
func (s *server) routes(route func(string, http.Handler)) {
	route("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	route("GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "model": s.model.Name})
	}))
	route("GET /v1/models", http.HandlerFunc(s.listModels))
	route("POST /v1/chat/completions", http.HandlerFunc(s.chatCompletions))
	route("POST /v1/completions", http.HandlerFunc(s.completions))
	route("POST /api/generate", http.HandlerFunc(s.ollamaGenerate))
	route("POST /api/chat", http.HandlerFunc(s.ollamaChat))
	route("GET /api/tags", http.HandlerFunc(s.ollamaTags))
	route("GET /api/version", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": version})
	}))
}

func (s *server) listModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": s.model.Name, "object": "model", "created": s.created.Unix(), "owned_by": "qwend",
		}},
	})
}

// engineFor checks the model name and readiness before any work.
func (s *server) engineFor(model string) (*engine.Engine, *apiError) {
	if model != "" && model != s.model.Name {
		return nil, &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "model_not_found",
			Message: fmt.Sprintf("field \"model\": model %q is not served here (serving %q)", model, s.model.Name)}
	}
	e := s.eng.Load()
	if e == nil || !s.ready.Load() {
		return nil, &apiError{Status: http.StatusServiceUnavailable, Type: engine.ErrorTypeUnavailable, Code: "model_loading", Message: "model is loading; see /readyz"}
	}
	return e, nil
}

// requestContext bounds a request by --request-timeout.
func (s *server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

func responseID(prefix string, r *http.Request) string {
	id := logging.RequestID(r.Context())
	if id == "" {
		id = logging.NewRequestID()
	}
	return prefix + id
}

// streamer writes a streamed response: status and headers go out with the
// first event, so errors before it are still proper HTTP errors.
type streamer struct {
	w       http.ResponseWriter
	flusher http.Flusher
	started bool
	ctype   string
}

func newStreamer(w http.ResponseWriter, ctype string) *streamer {
	f, _ := w.(http.Flusher)
	return &streamer{w: w, flusher: f, ctype: ctype}
}

func (st *streamer) start() {
	if st.started {
		return
	}
	st.started = true
	h := st.w.Header()
	h.Set("Content-Type", st.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
}

func (st *streamer) write(b []byte) {
	st.start()
	_, _ = st.w.Write(b)
	if st.flusher != nil {
		st.flusher.Flush()
	}
}

// sse writes one server-sent event with v as JSON.
func (st *streamer) sse(v any) {
	b, _ := json.Marshal(v)
	st.write(append(append([]byte("data: "), b...), '\n', '\n'))
}

func (st *streamer) ndjson(v any) {
	b, _ := json.Marshal(v)
	st.write(append(b, '\n'))
}

func optF32(p *float32, def float32) float32 {
	if p == nil {
		return def
	}
	return *p
}

func optInt(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// samplingFrom validates sampling parameters, naming the field at fault.
type samplingInput struct {
	Temperature   *float32
	TopP          *float32
	TopK          *int
	MinP          *float32
	RepeatPenalty *float32
	RepeatLastN   *int
	Seed          *int64
}

func (in samplingInput) params(defTemp float32, defRepeat float32) (engine.SamplingParams, bool, *apiError) {
	p := engine.SamplingParams{
		Temperature: optF32(in.Temperature, defTemp), TopP: optF32(in.TopP, 1), TopK: optInt(in.TopK, 40),
		MinP: optF32(in.MinP, 0), RepeatPenalty: optF32(in.RepeatPenalty, defRepeat), RepeatLastN: optInt(in.RepeatLastN, 64),
	}
	switch {
	case p.Temperature < 0 || p.Temperature > 2:
		return p, false, badRequest("field \"temperature\": %g is not in [0, 2]", p.Temperature)
	case p.TopP < 0 || p.TopP > 1:
		return p, false, badRequest("field \"top_p\": %g is not in [0, 1]", p.TopP)
	case p.TopK < 0:
		return p, false, badRequest("field \"top_k\": %d is negative", p.TopK)
	case p.MinP < 0 || p.MinP > 1:
		return p, false, badRequest("field \"min_p\": %g is not in [0, 1]", p.MinP)
	case p.RepeatPenalty < 0:
		return p, false, badRequest("field \"repeat_penalty\": %g is negative", p.RepeatPenalty)
	case p.RepeatLastN < -1:
		return p, false, badRequest("field \"repeat_last_n\": %d is below -1", p.RepeatLastN)
	}
	if in.Seed != nil {
		p.Seed = uint64(*in.Seed)
		return p, true, nil
	}
	p.Seed = uint64(time.Now().UnixNano())
	return p, false, nil
}

func checkMaxTokens(field string, v *int) (int, *apiError) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 && *v != -1 {
		return 0, badRequest("field %q: %d must be at least 1", field, *v)
	}
	if *v == -1 {
		return 0, nil
	}
	return *v, nil
}

func checkStops(stops []string) *apiError {
	if len(stops) > 16 {
		return badRequest("field \"stop\": at most 16 stop strings, got %d", len(stops))
	}
	for _, s := range stops {
		if s == "" {
			return badRequest("field \"stop\": empty stop string")
		}
	}
	return nil
}
