package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/slogtest"

	"go.opentelemetry.io/otel/trace"
)

func TestHandlerConformsToSlog(t *testing.T) {
	var buf bytes.Buffer
	h := NewJSONHandler(&buf, nil)
	results := func() []map[string]any {
		var ms []map[string]any
		for _, line := range bytes.Split(buf.Bytes(), []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		return ms
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerAddsCorrelation(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	ctx = WithRequestID(ctx, "req-1")
	var buf bytes.Buffer
	slog.New(NewJSONHandler(&buf, nil)).With("component", "test").InfoContext(ctx, "hello")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"trace_id": tid.String(), "span_id": sid.String(), "request_id": "req-1", "component": "test"} {
		if m[k] != want {
			t.Errorf("%s = %v, want %s", k, m[k], want)
		}
	}
	buf.Reset()
	slog.New(NewJSONHandler(&buf, nil)).InfoContext(context.Background(), "plain")
	if strings.Contains(buf.String(), "trace_id") || strings.Contains(buf.String(), "request_id") {
		t.Errorf("uncorrelated record got ids: %s", buf.String())
	}
}

func TestMiddlewareRequestID(t *testing.T) {
	var seen string
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = RequestID(r.Context()) }))
	for _, tc := range []struct {
		name, sent string
		keep       bool
	}{
		{"well formed is kept", "abc-123_x.y:z", true},
		{"missing gets one", "", false},
		{"bad characters replaced", "abc def<script>", false},
		{"too long replaced", strings.Repeat("a", 129), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.sent != "" {
				r.Header.Set(RequestIDHeader, tc.sent)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got := w.Header().Get(RequestIDHeader)
			if got != seen {
				t.Errorf("header %q, context %q", got, seen)
			}
			if tc.keep != (got == tc.sent) {
				t.Errorf("sent %q got %q, keep=%v", tc.sent, got, tc.keep)
			}
			if !validRequestID(got) {
				t.Errorf("id %q is not valid", got)
			}
		})
	}
}
