package openai_test

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
	"unicode/utf8"

	"github.com/qwend/qwend/api/apitest"
	"github.com/qwend/qwend/api/openai"
	"github.com/qwend/qwend/synth"
)

// shape lists the keys OpenAI's API reference gives an object (nested
// objects by their key); nulls are the keys whose value it documents as
// null in what qwend sends. qwend may send more keys, never fewer.
type shape struct {
	keys   []string
	nulls  []string
	nested map[string]shape
}

func (s shape) check(t *testing.T, where string, v any) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s: %T, want an object", where, v)
		return
	}
	for _, k := range s.keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no %q in %v", where, k, keysOf(m))
		}
	}
	for _, k := range s.nulls {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s: %q is %v, want null", where, k, v)
		}
	}
	for k, ns := range s.nested {
		switch v := m[k].(type) {
		case []any:
			for i, e := range v {
				ns.check(t, where+"."+k+"["+strconv.Itoa(i)+"]", e)
			}
		default:
			ns.check(t, where+"."+k, v)
		}
	}
}

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

var (
	usageShape = shape{keys: []string{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"}}
	chatShape  = shape{keys: []string{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"},
		nested: map[string]shape{
			"choices": {keys: []string{"index", "message", "logprobs", "finish_reason"}, nulls: []string{"logprobs"},
				nested: map[string]shape{"message": {keys: []string{"role", "content", "refusal"}, nulls: []string{"refusal"}}}},
			"usage": usageShape,
		}}
	chatChunkShape = shape{keys: []string{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}, nulls: []string{"usage"},
		nested: map[string]shape{"choices": {keys: []string{"index", "delta", "logprobs", "finish_reason"}, nulls: []string{"logprobs"}}}}
	completionShape = shape{keys: []string{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"},
		nested: map[string]shape{
			"choices": {keys: []string{"text", "index", "logprobs", "finish_reason"}, nulls: []string{"logprobs"}},
			"usage":   usageShape,
		}}
	completionChunkShape = shape{keys: []string{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}, nulls: []string{"usage"},
		nested: map[string]shape{"choices": {keys: []string{"text", "index", "logprobs", "finish_reason"}, nulls: []string{"logprobs"}}}}
	usageChunkShape = shape{keys: []string{"id", "object", "created", "model", "system_fingerprint", "choices", "usage"},
		nested: map[string]shape{"usage": usageShape}}
	modelShape = shape{keys: []string{"id", "object", "created", "owned_by"}}
	listShape  = shape{keys: []string{"object", "data"}, nested: map[string]shape{"data": modelShape}}
	errorShape = shape{keys: []string{"error"}, nested: map[string]shape{"error": {keys: []string{"message", "type", "param", "code"}}}}
)

// events reads a server-sent event stream's JSON events (not [DONE]).
func events(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

// Every object qwend sends carries the keys OpenAI's reference gives it:
// chat.completion, chat.completion.chunk (usage null on every chunk but
// the last when include_usage is set, and no usage key without it),
// text_completion whole and streamed, model, list, and error.
func TestObjectsHaveOpenAIShape(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	const chat, completions = "/v1/chat/completions", "/v1/completions"
	msgs := `"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0`
	_, b := ts.Post(t, chat, `{`+msgs+`}`)
	whole := decodeObject(t, b)
	chatShape.check(t, "chat.completion", whole)
	_, b = ts.Post(t, completions, `{"prompt":"hi","max_tokens":4,"temperature":0}`)
	completionShape.check(t, "text_completion", decodeObject(t, b))

	for _, tc := range []struct {
		path, body string
		chunk      shape
	}{
		{chat, `{` + msgs + `,"stream":true,"stream_options":{"include_usage":true}}`, chatChunkShape},
		{completions, `{"prompt":"hi","max_tokens":4,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`, completionChunkShape},
	} {
		_, b := ts.Post(t, tc.path, tc.body)
		evs := events(t, b)
		if len(evs) < 3 {
			t.Fatalf("%s: %d events", tc.path, len(evs))
		}
		for i, ev := range evs[:len(evs)-1] {
			tc.chunk.check(t, tc.path+" chunk "+strconv.Itoa(i), ev)
		}
		last := evs[len(evs)-1]
		usageChunkShape.check(t, tc.path+" usage chunk", last)
		if c, _ := last["choices"].([]any); c == nil || len(c) != 0 {
			t.Errorf("%s: usage chunk choices %v, want []", tc.path, last["choices"])
		}
		if fp := last["system_fingerprint"]; fp != whole["system_fingerprint"] || !strings.HasPrefix(fp.(string), "fp_") {
			t.Errorf("%s: system_fingerprint %v, whole response's %v", tc.path, fp, whole["system_fingerprint"])
		}
		// without include_usage no chunk has a usage key
		_, b = ts.Post(t, tc.path, strings.Replace(tc.body, `"include_usage":true`, `"include_usage":false`, 1))
		for _, ev := range events(t, b) {
			if _, ok := ev["usage"]; ok {
				t.Errorf("%s without include_usage: chunk with usage %v", tc.path, ev)
			}
		}
	}

	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	listShape.check(t, "list", decodeObject(t, b))

	_, b = ts.Post(t, chat, `{"messages":[]}`)
	errorShape.check(t, "error", decodeObject(t, b))
	e := decodeObject(t, b)["error"].(map[string]any)
	if e["param"] != nil {
		t.Errorf("error param %v, want null", e["param"])
	}
}

// Text parts join with a newline, so each keeps its boundary (issue 16's
// input: a system reminder, then the request); a part of a type qwend
// cannot take is a 400 naming its type and path.
func TestContentParts(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	const reminder, ask = "<system-reminder>be brief</system-reminder>", "write hello world in go"
	promptTokens := func(content string) int {
		t.Helper()
		resp, b := ts.Post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":`+content+`}],"max_tokens":1}`)
		if resp.StatusCode != 200 {
			t.Fatalf("content %s: %d %s", content, resp.StatusCode, b)
		}
		var r response
		if err := json.Unmarshal(b, &r); err != nil || r.Usage == nil {
			t.Fatalf("%s: %v", b, err)
		}
		return r.Usage.PromptTokens
	}
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	parts := promptTokens(`[{"type":"text","text":` + str(reminder) + `},{"type":"text","text":` + str(ask) + `}]`)
	if joined := promptTokens(str(reminder + "\n" + ask)); parts != joined {
		t.Errorf("parts: %d prompt tokens; joined with a newline: %d", parts, joined)
	}
	if runTogether := promptTokens(str(reminder + ask)); parts == runTogether {
		t.Errorf("parts: %d prompt tokens, the same as the parts run together", parts)
	}
	for _, typ := range []string{"image_url", "input_audio", "file"} {
		resp, b := ts.Post(t, "/v1/chat/completions", `{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"`+typ+`"}]}]}`)
		if resp.StatusCode != 400 || !strings.Contains(string(b), `messages[1].content[1].type`) || !strings.Contains(string(b), typ) {
			t.Errorf("%s part: %d %s", typ, resp.StatusCode, b)
		}
	}
}

// Null means absent over HTTP too (issue 16's inputs: stop null on both
// endpoints).
func TestNullStop(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stop":null}`},
		{"/v1/completions", `{"prompt":"hi","max_tokens":4,"stop":null,"stream_options":null,"user":null,"n":null,"seed":null}`},
	} {
		if resp, b := ts.Post(t, tc.path, tc.body); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, b)
		}
	}
}

// The stop string that starts first in the text ends it, whatever the
// order of the list, streamed and not (issue 16's input: greedy output
// starting " meda meda").
func TestEarliestStop(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	_, b := ts.Post(t, "/v1/completions", `{"prompt":"Name a fruit","max_tokens":24,"temperature":0}`)
	var full response
	if err := json.Unmarshal(b, &full); err != nil || len(full.Choices) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	text := full.Choices[0].Text
	if len(text) < 6 {
		t.Fatalf("greedy output %q too short", text)
	}
	// with " meda meda ...", the stops " m" and "meda"
	early, late := text[:2], text[1:5]
	if !utf8.ValidString(early) || !utf8.ValidString(late) {
		t.Fatalf("greedy output %q does not give whole characters for the stops", text)
	}
	want := ""
	for _, stops := range [][]string{{early, late}, {late, early}} {
		sj, _ := json.Marshal(stops)
		for _, stream := range []bool{false, true} {
			body := `{"prompt":"Name a fruit","max_tokens":24,"temperature":0,"stop":` + string(sj) + `,"stream":` + map[bool]string{false: "false", true: "true"}[stream] + `}`
			_, b := ts.Post(t, "/v1/completions", body)
			got := ""
			if stream {
				for _, ev := range events(t, b) {
					for _, c := range ev["choices"].([]any) {
						got += c.(map[string]any)["text"].(string)
					}
				}
			} else {
				var r response
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatal(err)
				}
				got = r.Choices[0].Text
			}
			if got != want {
				t.Errorf("text %q, stops %q, stream %v: got %q, want %q", text, stops, stream, got, want)
			}
		}
	}
}

// A control token never reaches the text: sampled hot over the whole
// vocabulary, the tiny model draws <|im_start|>, <|fim_middle|> and the
// like often; each ends its request with "stop", whole and streamed.
func TestControlTokensNeverInText(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	endedEarly := 0
	for seed := range 16 {
		for _, stream := range []string{"false", "true"} {
			body := `{"prompt":"Invent a word","max_tokens":60,"temperature":1.5,"top_k":0,"seed":` + strconv.Itoa(seed) + `,"stream":` + stream + `}`
			_, b := ts.Post(t, "/v1/completions", body)
			var text, finish string
			if stream == "true" {
				for _, ev := range events(t, b) {
					for _, c := range ev["choices"].([]any) {
						text += c.(map[string]any)["text"].(string)
						if f, ok := c.(map[string]any)["finish_reason"].(string); ok {
							finish = f
						}
					}
				}
			} else {
				var r response
				if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
					t.Fatalf("%s: %v", b, err)
				}
				text, finish = r.Choices[0].Text, *r.Choices[0].FinishReason
			}
			for _, tok := range synth.SpecialTokens {
				if strings.Contains(text, tok) {
					t.Errorf("seed %d stream %s: %s in %q", seed, stream, tok, text)
				}
			}
			if finish == "stop" {
				endedEarly++
			}
		}
	}
	if endedEarly == 0 {
		t.Error("no request ended on an end-of-generation or control token: the test shows nothing")
	}
	t.Logf("%d of 32 requests ended on an end-of-generation or control token", endedEarly)
}

// Unknown paths and wrong methods under /v1/ answer OpenAI's error JSON
// with a request id: 404, and 405 with Allow.
func TestUnknownRoutes(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/v1/nope", 404, ""},
		{"GET", "/v1/chat/completions", 405, "POST"},
		{"DELETE", "/v1/models", 405, "GET, HEAD"},
		{"GET", "/nowhere", 404, ""},
		{"POST", "/healthz", 405, "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: %d allow %q id %q, want %d allow %q", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Allow"), resp.Header.Get("X-Request-Id"), tc.status, tc.allow)
		}
		errorShape.check(t, tc.method+" "+tc.path, decodeObject(t, b))
	}
	if n := len(ts.Records()); n != 0 {
		t.Errorf("%d inference records for requests no route serves", n)
	}
}
