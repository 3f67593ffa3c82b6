package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CodeModelNotFound is the error code of a request for a model not served
// here (OpenAI's code; Ollama's routes answer it with 404).
const CodeModelNotFound = "model_not_found"

// probeMethods are the methods a path is tried with to tell a wrong method
// (405, with Allow) from an unknown path (404).
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// NotFound makes prefix, a path ending in "/" ("/v1/", "/api/", or "/"
// for everything else), answer what no route serves under it in the
// protocol's error shape: 405 with Allow when the path is served with
// other methods, else 404. Like every other request it has an
// X-Request-Id and goes through cfg.Wrap (a span and the HTTP metrics,
// under the prefix as its route), and it is logged; it is not an
// inference, so it is neither recorded nor a ledger row.
func (s *Server) NotFound(prefix string, writeErr ErrorWriter) {
	s.Handle(prefix, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var allow []string
		for _, m := range probeMethods {
			if m == r.Method {
				continue
			}
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := s.mux.Handler(probe); pattern != prefix && pattern != "" {
				allow = append(allow, m)
			}
		}
		target := fmt.Sprintf("%s %s", r.Method, clip(r.URL.Path, 200))
		e := &Error{Status: http.StatusNotFound, Kind: KindInvalid, Type: "invalid_request_error",
			Message: fmt.Sprintf("no route for %s", target)}
		if len(allow) > 0 {
			slices.Sort(allow)
			w.Header().Set("Allow", strings.Join(allow, ", "))
			e.Status = http.StatusMethodNotAllowed
			e.Message = fmt.Sprintf("method %s is not allowed for %s; allowed: %s", r.Method, clip(r.URL.Path, 200), strings.Join(allow, ", "))
		}
		writeErr(w, e)
		s.cfg.Logger.InfoContext(r.Context(), "no route", "method", clip(r.Method, 16), "path", clip(r.URL.Path, 200),
			"status", e.Status, "duration", time.Since(start))
	})
}

// clip cuts s to at most n bytes, for echoing client input.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
