package ollama_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/api/apitest"
	"github.com/qwend/qwend/api/ollama"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func register(s *api.Server) { ollama.Register(s, "test") }

func TestHandlers(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 128}, register)
	for _, tc := range []struct {
		name, path, body string
		status           int
		kind, mention    string
	}{
		{"generate", "/api/generate", `{"prompt":"hi","stream":false,"options":{"num_predict":3,"temperature":0}}`, 200, "", ""},
		{"generate raw", "/api/generate", `{"prompt":"hi","raw":true,"stream":false,"options":{"num_predict":2}}`, 200, "", ""},
		{"generate with system", "/api/generate", `{"prompt":"hi","system":"be brief","stream":false,"options":{"num_predict":2}}`, 200, "", ""},
		{"chat", "/api/chat", `{"messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":2}}`, 200, "", ""},
		{"bad option names its path", "/api/generate", `{"prompt":"x","options":{"top_p":3}}`, 400, api.KindInvalid, "options.top_p"},
		{"bad stop names its path", "/api/generate", `{"prompt":"x","options":{"stop":[""]}}`, 400, api.KindInvalid, "options.stop"},
		{"bad num_predict", "/api/generate", `{"prompt":"x","options":{"num_predict":-3}}`, 400, api.KindInvalid, "options.num_predict"},
		{"bad role", "/api/chat", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, api.KindInvalid, "role"},
		{"unknown model", "/api/chat", `{"model":"llama9","messages":[{"role":"user","content":"x"}]}`, 404, api.KindInvalid, "llama9"},
		{"context window", "/api/generate", `{"prompt":"` + strings.Repeat("lorem ipsum ", 200) + `","options":{"num_predict":5}}`, 400, api.KindContextWindow, "context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.Records())
			resp, b := ts.Post(t, tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.kind == "" {
				var r struct {
					Done      bool   `json:"done"`
					Response  string `json:"response"`
					EvalCount int    `json:"eval_count"`
				}
				if err := json.Unmarshal(b, &r); err != nil || !r.Done || r.EvalCount < 1 {
					t.Errorf("response %s: %v", b, err)
				}
			} else if !strings.Contains(string(b), tc.mention) {
				t.Errorf("error %s, want one mentioning %q", b, tc.mention)
			}
			recs := ts.Records()[before:]
			if len(recs) != 1 || recs[0].Status != tc.status || recs[0].ErrorType != tc.kind {
				t.Fatalf("records %+v, want one with %d %q", recs, tc.status, tc.kind)
			}
		})
	}
}

// Streaming is Ollama's default: NDJSON pieces, then one done object whose
// eval_count equals the pieces' tokens.
func TestStreamByDefault(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	resp, b := ts.Post(t, "/api/chat", `{"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":5,"temperature":0}}`)
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	var lines, evalCount int
	var done bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m struct {
			Done      bool `json:"done"`
			EvalCount int  `json:"eval_count"`
			Message   struct{ Role, Content string }
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines++
		if m.Done {
			done, evalCount = true, m.EvalCount
		}
	}
	recs := ts.Records()
	if !done || lines < 2 || len(recs) != 1 || recs[0].Result.OutputTokens != evalCount || !recs[0].Stream {
		t.Errorf("lines %d done %v eval_count %d records %+v", lines, done, evalCount, recs)
	}
}

// logprobs travel with the text they spell, in each streamed object and
// in the whole answer, with top_logprobs when asked for.
func TestLogprobs(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	type entry struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
		Top     []struct {
			Token   string  `json:"token"`
			Logprob float64 `json:"logprob"`
		} `json:"top_logprobs"`
	}
	type object struct {
		Response string
		Message  struct{ Content string }
		Logprobs []entry `json:"logprobs"`
	}
	check := func(what, text string, lps []entry, top int) {
		t.Helper()
		var spelled strings.Builder
		for i, e := range lps {
			spelled.WriteString(e.Token)
			if e.Logprob > 0 || len(e.Top) != top {
				t.Errorf("%s: token %d: %+v", what, i, e)
			}
		}
		if spelled.String() != text || len(lps) == 0 {
			t.Errorf("%s: tokens spell %q, the text is %q", what, spelled.String(), text)
		}
	}
	_, b := ts.Post(t, "/api/generate", `{"prompt":"def f(x):","stream":false,"logprobs":true,"top_logprobs":2,"options":{"num_predict":8,"temperature":0}}`)
	var whole object
	if err := json.Unmarshal(b, &whole); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	check("generate", whole.Response, whole.Logprobs, 2)

	_, b = ts.Post(t, "/api/chat", `{"messages":[{"role":"user","content":"hi"}],"logprobs":true,"options":{"num_predict":8,"temperature":0}}`)
	var text strings.Builder
	var all []entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var o object
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		text.WriteString(o.Message.Content)
		all = append(all, o.Logprobs...)
	}
	check("chat stream", text.String(), all, 0)
}

// num_ctx limits the request's context (up to the slot's); sampling
// methods qwend does not have are refused by name.
func TestOptionsHonouredOrRefused(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 512}, register)
	long := strings.Repeat("lorem ipsum ", 20) // about 160 tokens
	for body, want := range map[string]int{
		`{"prompt":"` + long + `","stream":false,"options":{"num_ctx":64,"num_predict":2}}`:                                                             400, // over its own num_ctx
		`{"prompt":"` + long + `","stream":false,"options":{"num_ctx":4096,"num_predict":2}}`:                                                           200, // the slot's 512 applies
		`{"prompt":"x","stream":false,"options":{"num_ctx":0}}`:                                                                                         400,
		`{"prompt":"x","stream":false,"options":{"mirostat":2}}`:                                                                                        400,
		`{"prompt":"x","stream":false,"options":{"typical_p":0.5}}`:                                                                                     400,
		`{"prompt":"x","stream":false,"options":{"mirostat":0,"typical_p":1,"tfs_z":1,"num_predict":2,"frequency_penalty":0.5,"presence_penalty":0.5}}`: 200,
	} {
		if resp, b := ts.Post(t, "/api/generate", body); resp.StatusCode != want {
			t.Errorf("%.120s: %d %s, want %d", body, resp.StatusCode, b, want)
		}
	}
}

// What Ollama defines and qwend cannot do is refused by name.
func TestOllamaFieldsRefusedByName(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	for body, field := range map[string]string{
		`{"model":"tiny","prompt":"x","images":["aGk="]}`:                 "images",
		`{"model":"tiny","prompt":"x","template":"{{ .Prompt }}"}`:        "template",
		`{"model":"tiny","prompt":"x","think":true}`:                      "think",
		`{"model":"tiny","prompt":"x","top_logprobs":3}`:                  "top_logprobs",
		`{"model":"tiny","prompt":"x","logprobs":true,"top_logprobs":21}`: "top_logprobs",
		`{"prompt":""}`: "model",
	} {
		if resp, b := ts.Post(t, "/api/generate", body); resp.StatusCode != 400 || !strings.Contains(string(b), field) {
			t.Errorf("%s: %d %s, want a 400 naming %s", body, resp.StatusCode, b, field)
		}
	}
	if resp, b := ts.Post(t, "/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"x","images":["aGk="]}]}`); resp.StatusCode != 400 || !strings.Contains(string(b), "messages[0].images") {
		t.Errorf("chat images: %d %s", resp.StatusCode, b)
	}
	if resp, b := ts.Post(t, "/api/generate", `{"model":"tiny","prompt":"x","think":false,"images":[],"stream":false,"options":{"num_predict":1}}`); resp.StatusCode != 200 {
		t.Errorf("think false, no images: %d %s", resp.StatusCode, b)
	}
}
