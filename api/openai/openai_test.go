package openai_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/api/apitest"
	"github.com/qwend/qwend/api/openai"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type response struct {
	Object  string `json:"object"`
	Choices []struct {
		Message      struct{ Role, Content string } `json:"message"`
		Delta        struct{ Role, Content string } `json:"delta"`
		Text         string                         `json:"text"`
		FinishReason *string                        `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// Every request, whatever its outcome, ends in exactly one record whose
// status and error type match the response.
func TestHandlers(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 128, MaxBodyBytes: 4096}, openai.Register)
	const chat = "/v1/chat/completions"
	for _, tc := range []struct {
		name, path, body string
		status           int
		kind, mention    string // error kind and a word of the message ("" on success)
	}{
		{"chat", chat, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"temperature":0}`, 200, "", ""},
		{"chat with text parts", chat, `{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":2}`, 200, "", ""},
		{"completion", "/v1/completions", `{"prompt":"x","max_tokens":2}`, 200, "", ""},
		{"fill in the middle", "/v1/completions", `{"prompt":"def f(","suffix":"return 1","max_tokens":2}`, 200, "", ""},
		{"malformed json", chat, `{"messages":`, 400, api.KindInvalid, "malformed JSON"},
		{"empty body", chat, ``, 400, api.KindInvalid, "empty"},
		{"wrong type", chat, `{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, 400, api.KindInvalid, "max_tokens"},
		{"image part", chat, `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, api.KindInvalid, "content"},
		{"unknown model", chat, `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 400, api.KindInvalid, "gpt-9"},
		{"bad temperature", chat, `{"messages":[{"role":"user","content":"x"}],"temperature":7}`, 400, api.KindInvalid, "temperature"},
		{"no messages", chat, `{"messages":[]}`, 400, api.KindInvalid, "messages"},
		{"bad role", chat, `{"messages":[{"role":"wizard","content":"x"}]}`, 400, api.KindInvalid, "role"},
		{"bad stop", "/v1/completions", `{"prompt":"x","stop":5}`, 400, api.KindInvalid, "stop"},
		{"n above one", "/v1/completions", `{"prompt":"x","n":2}`, 400, api.KindInvalid, `"n"`},
		{"zero max tokens", "/v1/completions", `{"prompt":"x","max_tokens":0}`, 400, api.KindInvalid, "max_tokens"},
		{"empty prompt", "/v1/completions", `{"prompt":""}`, 400, api.KindInvalid, "prompt"},
		{"context window", "/v1/completions", `{"prompt":"hello","max_tokens":500}`, 400, api.KindContextWindow, "context"},
		{"body too large", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 5000) + `"}`, 413, api.KindInvalid, "4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.Records())
			resp, b := ts.Post(t, tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			var r response
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if tc.kind == "" {
				if len(r.Choices) != 1 || r.Usage == nil || r.Usage.CompletionTokens < 1 {
					t.Errorf("response %s", b)
				}
			} else if r.Error == nil || !strings.Contains(r.Error.Message, tc.mention) {
				t.Errorf("error %s, want one mentioning %q", b, tc.mention)
			}
			recs := ts.Records()[before:]
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			rec := recs[0]
			if rec.Status != tc.status || rec.ErrorType != tc.kind || rec.Endpoint != "POST "+tc.path {
				t.Errorf("record status %d kind %q endpoint %q, want %d %q", rec.Status, rec.ErrorType, rec.Endpoint, tc.status, tc.kind)
			}
			if tc.kind == "" && (rec.Result.OutputTokens != r.Usage.CompletionTokens || rec.Result.PromptTokens != r.Usage.PromptTokens) {
				t.Errorf("record tokens %+v, response usage %+v", rec.Result, r.Usage)
			}
		})
	}
}

func TestStreamAgreesWithWhole(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	body := `{"messages":[{"role":"user","content":"count"}],"max_tokens":8,"temperature":0,"seed":1%s}`
	_, whole := ts.Post(t, "/v1/chat/completions", strings.Replace(body, "%s", "", 1))
	var w response
	if err := json.Unmarshal(whole, &w); err != nil {
		t.Fatal(err)
	}
	resp, streamed := ts.Post(t, "/v1/chat/completions", strings.Replace(body, "%s", `,"stream":true,"stream_options":{"include_usage":true}`, 1))
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	var text strings.Builder
	var usage, done bool
	sc := bufio.NewScanner(bytes.NewReader(streamed))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			continue
		}
		var ev response
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if ev.Object != "chat.completion.chunk" {
			t.Errorf("object %q", ev.Object)
		}
		for _, c := range ev.Choices {
			text.WriteString(c.Delta.Content)
		}
		if ev.Usage != nil {
			usage = ev.Usage.CompletionTokens == w.Usage.CompletionTokens
		}
	}
	if !done || !usage || text.String() != w.Choices[0].Message.Content {
		t.Errorf("stream text %q usage %v done %v; whole %q", text.String(), usage, done, w.Choices[0].Message.Content)
	}
	recs := ts.Records()
	if len(recs) != 2 || !recs[1].Stream || recs[1].Status != 200 || recs[1].ErrorType != "" {
		t.Errorf("records %+v", recs)
	}
}

func TestModels(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	resp, err := ts.Client().Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Data []struct{ ID string } `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Data) != 1 || m.Data[0].ID != "tiny" {
		t.Errorf("models %+v %v", m, err)
	}
	if len(ts.Records()) != 0 {
		t.Error("a model listing was recorded as an inference")
	}
}
