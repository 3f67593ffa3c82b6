package ollama_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/api/apitest"
	"github.com/qwend/qwend/api/ollama"
	"github.com/qwend/qwend/synth"
)

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

// lines reads an NDJSON body (or one JSON object) into its objects.
func lines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// Ollama's load and unload calls (issue 16's inputs): /api/generate
// without a prompt and /api/chat without messages answer 200 at once with
// done_reason "load", or "unload" with keep_alive 0, whatever form
// keep_alive takes; the model stays loaded and serves the next request.
func TestLoadAndUnload(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	genKeys := []string{"created_at", "done", "done_reason", "model", "response"}
	chatKeys := []string{"created_at", "done", "done_reason", "message", "model"}
	for _, tc := range []struct {
		path, body, reason string
	}{
		{"/api/generate", `{"model":"tiny"}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":-1}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":"-1m"}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":"5m"}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":300}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":1.5}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":"-1"}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":null}`, "load"},
		{"/api/generate", `{"model":"tiny","prompt":"","stream":true}`, "load"},
		{"/api/generate", `{"model":"tiny","keep_alive":0}`, "unload"},
		{"/api/generate", `{"model":"tiny","keep_alive":"0s"}`, "unload"},
		{"/api/generate", `{"model":"tiny","keep_alive":"0"}`, "unload"},
		{"/api/chat", `{"model":"tiny","messages":[]}`, "load"},
		{"/api/chat", `{"model":"tiny"}`, "load"},
		{"/api/chat", `{"model":"tiny","messages":[],"keep_alive":"1h"}`, "load"},
		{"/api/chat", `{"model":"tiny","messages":[],"keep_alive":0}`, "unload"},
	} {
		resp, b := ts.Post(t, tc.path, tc.body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q %s", tc.path, tc.body, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			continue
		}
		m := lines(t, b)[0]
		want := genKeys
		if tc.path == "/api/chat" {
			want = chatKeys
			if msg, _ := m["message"].(map[string]any); msg["role"] != "assistant" || msg["content"] != "" {
				t.Errorf("%s %s: message %v", tc.path, tc.body, m["message"])
			}
		} else if m["response"] != "" {
			t.Errorf("%s %s: response %v", tc.path, tc.body, m["response"])
		}
		if got := keys(m); !slices.Equal(got, want) || m["done"] != true || m["done_reason"] != tc.reason || m["model"] != "tiny" {
			t.Errorf("%s %s: %s, want keys %v and done_reason %q", tc.path, tc.body, b, want, tc.reason)
		}
	}
	for _, body := range []string{`{"model":"tiny","keep_alive":"soon"}`, `{"model":"tiny","keep_alive":true}`, `{"model":"tiny","keep_alive":{}}`} {
		resp, b := ts.Post(t, "/api/generate", body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), "keep_alive") {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	// a model not served is 404, loaded or not
	if resp, b := ts.Post(t, "/api/generate", `{"model":"llama9"}`); resp.StatusCode != 404 {
		t.Errorf("load of another model: %d %s", resp.StatusCode, b)
	}
	// still loaded after the unload
	resp, b := ts.Post(t, "/api/generate", `{"model":"tiny","prompt":"hi","stream":false,"keep_alive":0,"options":{"num_predict":2}}`)
	if resp.StatusCode != 200 || lines(t, b)[0]["done_reason"] == "unload" {
		t.Errorf("after unload: %d %s", resp.StatusCode, b)
	}
}

func TestKeepAliveForms(t *testing.T) {
	for _, tc := range []struct {
		json string
		want time.Duration
	}{
		{`300`, 5 * time.Minute}, {`0`, 0}, {`-1`, ollama.Forever}, {`0.5`, 500 * time.Millisecond},
		{`"5m"`, 5 * time.Minute}, {`"1h30m"`, 90 * time.Minute}, {`"-1s"`, ollama.Forever}, {`"0"`, 0},
		{`"120"`, 2 * time.Minute}, {`"-1"`, ollama.Forever}, {`1e300`, ollama.Forever},
	} {
		var k ollama.KeepAlive
		if err := api.Unmarshal([]byte(tc.json), &k); err != nil || k.Duration != tc.want {
			t.Errorf("%s: %v (%v), want %v", tc.json, k.Duration, err, tc.want)
		}
	}
}

// Every error of an /api/ route is Ollama's {"error":"<message>"}, before
// a stream (with Ollama's 404 for a model not served) and as the last line
// of one (a request timing out mid-stream), and so are unknown paths and
// wrong methods, with a request id.
func TestErrorShape(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 8192, RequestTimeout: 300 * time.Millisecond}, register)
	check := func(what string, m map[string]any) {
		t.Helper()
		if msg, ok := m["error"].(string); !ok || msg == "" || len(m) != 1 {
			t.Errorf("%s: %v, want {\"error\": \"<message>\"}", what, m)
		}
	}
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/api/chat", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, 404},
		{"/api/generate", `{"model":"no-such-model","prompt":"hi"}`, 404},
		{"/api/generate", `{"prompt":`, 400},
		{"/api/generate", `{"prompt":"x","options":{"top_p":3}}`, 400},
		{"/api/chat", `{"messages":[{"role":"wizard","content":"x"}]}`, 400},
	} {
		resp, b := ts.Post(t, tc.path, tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d: %s", tc.path, tc.body, resp.StatusCode, tc.status, b)
		}
		check(tc.path+" "+tc.body, lines(t, b)[0])
	}
	for _, path := range []string{"/api/generate", "/api/chat"} {
		body := `{"prompt":"go","messages":[{"role":"user","content":"go"}],"options":{"num_predict":8000,"temperature":0}}`
		resp, b := ts.Post(t, path, body)
		ls := lines(t, b)
		if resp.StatusCode != 200 || len(ls) < 1 {
			t.Fatalf("%s: %d, %d lines", path, resp.StatusCode, len(ls))
		}
		last := ls[len(ls)-1]
		check(path+" last line after a timeout", last)
		if !strings.Contains(last["error"].(string), "timed out") {
			t.Errorf("%s: last line %v", path, last)
		}
	}
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/api/nope", 404, ""},
		{"GET", "/api/chat", 405, "POST"},
		{"POST", "/api/tags", 405, "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: %d allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"))
		}
		check(tc.method+" "+tc.path, lines(t, b)[0])
	}
}

// /api/generate's final object carries context, the prompt's and the
// answer's token ids, streamed and not (issue 16's input).
func TestGenerateContext(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	var lengths []int
	for _, stream := range []string{"false", "true"} {
		_, b := ts.Post(t, "/api/generate", `{"model":"tiny","prompt":"def add(a, b):","stream":`+stream+`,"options":{"num_predict":8,"temperature":0}}`)
		ls := lines(t, b)
		final := ls[len(ls)-1]
		ctx, ok := final["context"].([]any)
		if !ok || final["done"] != true {
			t.Fatalf("stream %s: final %v has no context", stream, final)
		}
		prompt, eval := final["prompt_eval_count"].(float64), final["eval_count"].(float64)
		if len(ctx) != int(prompt+eval) || eval != 8 {
			t.Errorf("stream %s: context of %d ids for %v prompt and %v answer tokens", stream, len(ctx), prompt, eval)
		}
		for _, l := range ls[:len(ls)-1] {
			if _, ok := l["context"]; ok {
				t.Errorf("stream %s: a piece carries context: %v", stream, l)
			}
		}
		lengths = append(lengths, len(ctx))
	}
	if lengths[0] != lengths[1] {
		t.Errorf("context lengths whole %d, streamed %d", lengths[0], lengths[1])
	}
	_, b := ts.Post(t, "/api/chat", `{"messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":2}}`)
	if _, ok := lines(t, b)[0]["context"]; ok {
		t.Errorf("chat carries context: %s", b)
	}
}

// Null is absent in options too (issue 16's input), and a bad option is
// named by its path.
func TestNullOptions(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	for _, tc := range []struct{ path, body string }{
		{"/api/generate", `{"prompt":"hi","stream":false,"options":{"stop":null,"num_predict":2,"seed":null,"temperature":null}}`},
		{"/api/chat", `{"messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"stop":null,"num_predict":2}}`},
		{"/api/chat", `{"messages":[{"role":"user","content":"hi"}],"stream":null,"options":null,"keep_alive":null,"model":null}`},
	} {
		if resp, b := ts.Post(t, tc.path, tc.body); resp.StatusCode != 200 {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, resp.StatusCode, b)
		}
	}
	resp, b := ts.Post(t, "/api/chat", `{"messages":[{"role":"user","content":"hi"}],"options":{"stop":[""]}}`)
	if resp.StatusCode != 400 || !strings.Contains(string(b), `options.stop`) {
		t.Errorf("empty stop: %d %s", resp.StatusCode, b)
	}
}

// A control token never reaches the text on either endpoint, whole or
// streamed: sampled hot over the whole vocabulary, the tiny model draws
// them often, and each ends its request with done_reason "stop".
func TestControlTokensNeverInText(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	endedEarly := 0
	for seed := range 8 {
		for _, path := range []string{"/api/generate", "/api/chat"} {
			for _, stream := range []string{"false", "true"} {
				body := `{"prompt":"Invent a word","messages":[{"role":"user","content":"Invent a word"}],"stream":` + stream +
					`,"options":{"num_predict":60,"temperature":1.5,"top_k":0,"top_p":1,"repeat_penalty":1,"seed":` + strconv.Itoa(seed) + `}}`
				_, b := ts.Post(t, path, body)
				var text strings.Builder
				var final map[string]any
				for _, l := range lines(t, b) {
					if msg, ok := l["message"].(map[string]any); ok {
						text.WriteString(msg["content"].(string))
					}
					if r, ok := l["response"].(string); ok {
						text.WriteString(r)
					}
					final = l
				}
				for _, tok := range synth.SpecialTokens {
					if strings.Contains(text.String(), tok) {
						t.Errorf("%s seed %d stream %s: %s in %q", path, seed, stream, tok, text.String())
					}
				}
				if final["done_reason"] == "stop" {
					endedEarly++
				}
			}
		}
	}
	if endedEarly == 0 {
		t.Error("no request ended on an end-of-generation or control token: the test shows nothing")
	}
	t.Logf("%d of 32 requests ended on an end-of-generation or control token", endedEarly)
}

// The stop string that starts first in the text ends it, whatever the
// order of options.stop, on both endpoints, streamed and not.
func TestEarliestStop(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	text := func(path, stop, stream string) string {
		t.Helper()
		body := `{"prompt":"Name a fruit","raw":true,"messages":[{"role":"user","content":"Name a fruit"}],"stream":` + stream +
			`,"options":{"num_predict":24,"temperature":0` + stop + `}}`
		resp, b := ts.Post(t, path, body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", path, body, resp.StatusCode, b)
		}
		var out strings.Builder
		for _, l := range lines(t, b) {
			if msg, ok := l["message"].(map[string]any); ok {
				out.WriteString(msg["content"].(string))
			}
			if r, ok := l["response"].(string); ok {
				out.WriteString(r)
			}
		}
		return out.String()
	}
	for _, path := range []string{"/api/generate", "/api/chat"} {
		full := text(path, "", "false")
		if len(full) < 6 {
			t.Fatalf("%s: greedy output %q too short", path, full)
		}
		// one stop at the first character, one starting at the second
		early, late := full[:2], full[1:5]
		if !utf8.ValidString(early) || !utf8.ValidString(late) {
			t.Fatalf("%s: greedy output %q does not give whole characters for the stops", path, full)
		}
		for _, stops := range [][]string{{early, late}, {late, early}} {
			sj, _ := json.Marshal(stops)
			for _, stream := range []string{"false", "true"} {
				if got := text(path, `,"stop":`+string(sj), stream); got != "" {
					t.Errorf("%s: output %q, stops %q, stream %s: got %q, want \"\"", path, full, stops, stream, got)
				}
			}
		}
	}
}
