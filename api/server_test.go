package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type records []api.Record

func (r *records) Record(_ context.Context, rec *api.Record) { *r = append(*r, *rec) }

// A handler that panics answers 500 in the API's shape, logs the panic once
// with its stack, is recorded as an internal error, and the server goes on.
func TestPanicIsA500AndRecorded(t *testing.T) {
	var logBuf bytes.Buffer
	var recs records
	s := api.New(api.Config{Model: "m", Recorder: &recs, Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	s.Inference("POST /boom", engine.OperationChat, api.WriteOpenAIError, func(x *api.Exchange) *api.Error {
		var m map[string]int
		m["x"]++ // nil map: panics
		return nil
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	for range 2 {
		resp, err := http.Post(ts.URL+"/boom", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		var body api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 500 || body.Error.Type != "server_error" || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("status %d body %+v", resp.StatusCode, body)
		}
	}
	if len(recs) != 2 || recs[0].ErrorType != api.KindInternal || recs[0].Status != 500 {
		t.Errorf("records %+v", recs)
	}
	if n := strings.Count(logBuf.String(), "panic serving request"); n != 2 || !strings.Contains(logBuf.String(), "goroutine") {
		t.Errorf("%d panic log lines (want one per panic, with a stack):\n%s", n, logBuf.String())
	}
}

// Before an engine is set, inference routes answer 503 with Retry-After and
// readiness says loading.
func TestNotReady(t *testing.T) {
	var recs records
	s := api.New(api.Config{Model: "m", Recorder: &recs})
	s.Inference("POST /x", engine.OperationChat, api.WriteOpenAIError, func(x *api.Exchange) *api.Error {
		_, aerr := x.Engine("")
		return aerr
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/x", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	r, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 503 {
		t.Errorf("readyz %d before the engine", r.StatusCode)
	}
	if len(recs) != 1 || recs[0].ErrorType != api.KindUnavailable {
		t.Errorf("records %+v", recs)
	}
}

// Keys a request type does not define are ignored and logged once each.
func TestIgnoredKeysLoggedOnce(t *testing.T) {
	var logBuf bytes.Buffer
	s := api.New(api.Config{Model: "m", Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	type body struct {
		A       int         `json:"a"`
		Unknown api.Unknown `json:",embed"`
	}
	s.Inference("POST /x", engine.OperationChat, api.WriteOpenAIError, func(x *api.Exchange) *api.Error {
		var in body
		if e := x.Decode(&in); e != nil {
			return e
		}
		x.IgnoredKeys("", in.Unknown)
		api.WriteJSON(x.W, 200, map[string]int{"a": in.A})
		return nil
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	for range 3 {
		resp, err := http.Post(ts.URL+"/x", "application/json", strings.NewReader(`{"a":1,"zz":2,"yy":null}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := strings.Count(logBuf.String(), "request key ignored"); n != 2 || !strings.Contains(logBuf.String(), `"key":"zz"`) {
		t.Errorf("%d log lines, want one per key:\n%s", n, logBuf.String())
	}
}
