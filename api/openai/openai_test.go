package openai_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

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
		{"unknown model", chat, `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404, api.KindInvalid, "gpt-9"},
		{"bad temperature", chat, `{"messages":[{"role":"user","content":"x"}],"temperature":7}`, 400, api.KindInvalid, "temperature"},
		{"no messages", chat, `{"messages":[]}`, 400, api.KindInvalid, "messages"},
		{"bad role", chat, `{"messages":[{"role":"wizard","content":"x"}]}`, 400, api.KindInvalid, "role"},
		{"bad stop", "/v1/completions", `{"prompt":"x","stop":5}`, 400, api.KindInvalid, "stop"},
		{"n above one", "/v1/completions", `{"prompt":"x","n":2}`, 400, api.KindInvalid, `"n"`},
		{"zero max tokens", "/v1/completions", `{"prompt":"x","max_tokens":0}`, 400, api.KindInvalid, "max_tokens"},
		{"empty prompt", "/v1/completions", `{"prompt":""}`, 400, api.KindInvalid, "prompt"},
		{"context window", "/v1/completions", `{"prompt":"` + strings.Repeat("lorem ipsum ", 200) + `","max_tokens":5}`, 400, api.KindContextWindow, "context"},
		{"max_tokens past the context is clamped", "/v1/completions", `{"prompt":"hello","max_tokens":500}`, 200, "", ""},
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

// return_progress streams prompt_progress chunks (llama-server's shape)
// while the prompt is prefilled in chunks, before the first token: no
// choices, processed growing to the whole prompt, total the prompt tokens
// of the usage.
func TestReturnProgress(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048, BatchSize: 32}, openai.Register)
	long := strings.Repeat("the prompt goes in by chunks ", 30)
	_, streamed := ts.Post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"`+long+`"}],"max_tokens":3,`+
		`"stream":true,"stream_options":{"include_usage":true},"return_progress":true}`)
	type progress struct{ Total, Cache, Processed, TimeMS int }
	var got []progress
	var prompt int
	content := false
	sc := bufio.NewScanner(bytes.NewReader(streamed))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var ev struct {
			response
			Progress *struct {
				Total     int `json:"total"`
				Cache     int `json:"cache"`
				Processed int `json:"processed"`
				TimeMS    int `json:"time_ms"`
			} `json:"prompt_progress"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		switch {
		case ev.Progress != nil:
			if content || len(ev.Choices) != 0 || ev.Object != "chat.completion.chunk" || !strings.Contains(line, `"usage":null`) {
				t.Errorf("progress event %s: after content %v", line, content)
			}
			got = append(got, progress(*ev.Progress))
		case ev.Usage != nil:
			prompt = ev.Usage.PromptTokens
		case len(ev.Choices) > 0:
			content = true
		}
	}
	if len(got) == 0 || prompt == 0 {
		t.Fatalf("%d progress events, prompt tokens %d: %s", len(got), prompt, streamed)
	}
	for i, p := range got {
		if p.Total != prompt || p.Processed > p.Total || p.Processed < p.Cache || (i > 0 && p.Processed <= got[i-1].Processed) {
			t.Errorf("progress %d: %+v (prompt %d, before %+v)", i, p, prompt, got[max(i-1, 0)])
		}
	}
	if last := got[len(got)-1]; last.Processed != prompt {
		t.Errorf("last progress %+v: want %d processed", last, prompt)
	}
	if prompt > 3*32 && len(got) < 2 {
		t.Errorf("a %d-token prompt in chunks of 32 gave %d progress events", prompt, len(got))
	}
}

// logprobs come in each API's shape, their tokens spelling the text they
// go with: chat's logprobs.content (whole and per streamed chunk) and
// completions' tokens, token_logprobs, top_logprobs and text_offset.
func TestLogprobs(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	type alt struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
	}
	type content struct {
		alt
		Top []alt `json:"top_logprobs"`
	}
	type choice struct {
		Message  struct{ Content string }
		Delta    struct{ Content string }
		Text     string
		Logprobs *struct {
			Content       []content            `json:"content"`
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		}
	}
	checkContent := func(what, text string, c []content, top int) {
		t.Helper()
		var spelled strings.Builder
		for i, e := range c {
			spelled.WriteString(e.Token)
			if e.Logprob > 0 || len(e.Top) != top || len(e.Bytes) != len(e.Token) && !strings.ContainsRune(e.Token, '\uFFFD') {
				t.Errorf("%s: token %d: %+v", what, i, e)
			}
		}
		if spelled.String() != text || len(c) == 0 {
			t.Errorf("%s: tokens spell %q, the text is %q", what, spelled.String(), text)
		}
	}
	const body = `{"messages":[{"role":"user","content":"count"}],"max_tokens":8,"temperature":0,"logprobs":true,"top_logprobs":3`
	resp, b := ts.Post(t, "/v1/chat/completions", body+`}`)
	var whole struct{ Choices []choice }
	if err := json.Unmarshal(b, &whole); err != nil || resp.StatusCode != 200 || len(whole.Choices) != 1 || whole.Choices[0].Logprobs == nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
	}
	checkContent("chat", whole.Choices[0].Message.Content, whole.Choices[0].Logprobs.Content, 3)

	_, streamed := ts.Post(t, "/v1/chat/completions", body+`,"stream":true}`)
	var text strings.Builder
	var all []content
	sc := bufio.NewScanner(bytes.NewReader(streamed))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var ev struct{ Choices []choice }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		for _, c := range ev.Choices {
			text.WriteString(c.Delta.Content)
			if c.Logprobs != nil {
				all = append(all, c.Logprobs.Content...)
			}
		}
	}
	checkContent("chat stream", text.String(), all, 3)
	if text.String() != whole.Choices[0].Message.Content {
		t.Errorf("streamed %q, whole %q", text.String(), whole.Choices[0].Message.Content)
	}

	resp, b = ts.Post(t, "/v1/completions", `{"prompt":"def f(x):","max_tokens":8,"temperature":0,"logprobs":2}`)
	var comp struct{ Choices []choice }
	if err := json.Unmarshal(b, &comp); err != nil || resp.StatusCode != 200 || len(comp.Choices) != 1 || comp.Choices[0].Logprobs == nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
	}
	l := comp.Choices[0].Logprobs
	if strings.Join(l.Tokens, "") != comp.Choices[0].Text || len(l.TokenLogprobs) != len(l.Tokens) || len(l.TopLogprobs) != len(l.Tokens) || len(l.TextOffset) != len(l.Tokens) {
		t.Fatalf("completion logprobs %+v for %q", l, comp.Choices[0].Text)
	}
	offset := 0
	for i := range l.Tokens {
		if l.TextOffset[i] != offset || l.TokenLogprobs[i] > 0 || len(l.TopLogprobs[i]) == 0 || len(l.TopLogprobs[i]) > 2 {
			t.Errorf("completion token %d: %q %v %v offset %d (want %d)", i, l.Tokens[i], l.TokenLogprobs[i], l.TopLogprobs[i], l.TextOffset[i], offset)
		}
		offset += len(l.Tokens[i])
	}
	// without logprobs asked for, the field is null
	_, b = ts.Post(t, "/v1/completions", `{"prompt":"def f(x):","max_tokens":2}`)
	if !strings.Contains(string(b), `"logprobs":null`) {
		t.Errorf("no logprobs asked: %s", b)
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

// A streamed request sends its status line and headers once it is
// admitted, before its first token: here while the only slot is still busy
// with another stream.
func TestStreamHeadersBeforeFirstToken(t *testing.T) {
	ts := apitest.New(t, apitest.Options{Parallel: 1, QueueLength: 2, ContextPerSlot: 4096}, openai.Register)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions",
		strings.NewReader(`{"prompt":"hold","max_tokens":4000,"temperature":0,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	hold.Header.Set("Content-Type", "application/json")
	a, err := http.DefaultClient.Do(hold)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	ra := bufio.NewReader(a.Body)
	if _, err := ra.ReadString('\n'); err != nil { // A is generating
		t.Fatal(err)
	}
	b, err := http.Post(ts.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	// B's headers are here, and A still holds the slot: B has no token yet
	if b.StatusCode != 200 || b.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("B: %d %q", b.StatusCode, b.Header.Get("Content-Type"))
	}
	cancel()
	// A was cut there, not finished: B's headers did not wait for A's end
	if restA, _ := io.ReadAll(ra); strings.Contains(string(restA), `"finish_reason":"length"`) {
		t.Error("A ran to its end before B's headers came")
	}
	rest, _ := io.ReadAll(b.Body)
	if !strings.Contains(string(rest), `"role":"assistant"`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("B's stream after the slot freed: %s", rest)
	}
}

// A client that stops reading a stream is cut after the write timeout: its
// generation stops, its slot is free for the next request, and it is
// recorded as client_stalled.
func TestStalledReaderIsCut(t *testing.T) {
	ts := apitest.New(t, apitest.Options{Parallel: 1, QueueLength: 0, ContextPerSlot: 8192, WriteTimeout: 300 * time.Millisecond, SmallBuffers: true}, openai.Register)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	conn, err := d.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"prompt":"never read","max_tokens":8000,"temperature":0,"stream":true}`
	fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// its headers come once it holds the slot; then it reads no more
	if status, err := bufio.NewReaderSize(conn, 16).ReadString('\n'); err != nil || !strings.Contains(status, "200") {
		t.Fatalf("stalled request's status line %q: %v", status, err)
	}
	// the stalled stream holds the only slot until it is cut; then a new
	// request is served (polled: the cut comes after the write timeout)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, b := ts.Post(t, "/v1/completions", `{"prompt":"next","max_tokens":2}`)
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != 429 || time.Now().After(deadline) {
			t.Fatalf("slot not freed from the stalled reader: %d %s", resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond) // polling until the write deadline passes
	}
	// its handler ends once its write fails: poll for its record
	var stalled *api.Record
	for stalled == nil && time.Now().Before(deadline) {
		for _, r := range ts.Records() {
			if r.ErrorType == api.KindStalled {
				stalled = &r
			}
		}
		time.Sleep(10 * time.Millisecond) // polling for the handler's end
	}
	if stalled == nil || stalled.Result.OutputTokens >= 8000 {
		t.Fatalf("no client_stalled record cut short: %+v", ts.Records())
	}
}

// Abort (the drain deadline) ends a running stream with a shutdown error
// event and records it as such.
func TestAbortEndsStreamsWithShutdown(t *testing.T) {
	ts := apitest.New(t, apitest.Options{Parallel: 1, ContextPerSlot: 4096}, openai.Register)
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"long","max_tokens":4000,"temperature":0,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if n := ts.API.Abort(); n != 1 {
		t.Errorf("Abort: %d in flight, want 1", n)
	}
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), `"code":"shutdown"`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("stream end after Abort: %.300s", rest)
	}
	recs := ts.Records()
	if len(recs) != 1 || recs[0].ErrorType != api.KindShutdown {
		t.Errorf("records %+v", recs)
	}
}

// A body not declared JSON is a 415 (a web page can send text/plain or a
// form to localhost without the browser asking first), recorded like any
// refusal.
func TestJSONContentTypeRequired(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	body := `{"prompt":"x","max_tokens":1}`
	for ct, want := range map[string]int{
		"text/plain": 415, "application/x-www-form-urlencoded": 415, "multipart/form-data; boundary=x": 415, "": 415,
		"application/json": 200, "application/json; charset=utf-8": 200, "application/merge+json": 200,
	} {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 415 && !strings.Contains(string(b), "application/json") {
			t.Errorf("Content-Type %q: %d %s", ct, resp.StatusCode, b)
		}
	}
	req, _ := http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader("\x1f\x8b compressed"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 415 || !strings.Contains(string(b), "Content-Encoding") {
		t.Errorf("gzip body: %d %s", resp.StatusCode, b)
	}
}

// Every parameter OpenAI defines that qwend cannot honour is refused by
// name; the ones it honours are range-checked.
func TestParametersHonouredOrRefused(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	const msgs = `"messages":[{"role":"user","content":"hi"}],"max_tokens":2`
	for body, field := range map[string]string{
		`{` + msgs + `,"logprobs":3}`:                      "logprobs",
		`{` + msgs + `,"logprobs":true,"top_logprobs":21}`: "top_logprobs",
		`{` + msgs + `,"functions":[{"name":"f"}]}`:        "functions",
		`{` + msgs + `,"function_call":"auto"}`:            "function_call",
		`{` + msgs + `,"reasoning_effort":"low"}`:          "reasoning_effort",
		`{` + msgs + `,"top_logprobs":3}`:                  "top_logprobs",
		`{` + msgs + `,"store":true}`:                      "store",
		`{` + msgs + `,"modalities":["text","audio"]}`:     "modalities",
		`{` + msgs + `,"audio":{"voice":"x"}}`:             "audio",
		`{` + msgs + `,"prediction":{"type":"content"}}`:   "prediction",
		`{` + msgs + `,"frequency_penalty":3}`:             "frequency_penalty",
		`{` + msgs + `,"presence_penalty":-2.5}`:           "presence_penalty",
		`{` + msgs + `,"logit_bias":{"abc":1}}`:            "logit_bias",
		`{` + msgs + `,"logit_bias":{"5":101}}`:            "logit_bias.5",
		`{` + msgs + `,"logit_bias":{"999999999":-100}}`:   "logit_bias",
		`{` + msgs + `,"return_progress":true}`:            "return_progress",
	} {
		resp, b := ts.Post(t, "/v1/chat/completions", body)
		var e struct{ Error struct{ Message string } }
		json.Unmarshal(b, &e)
		if resp.StatusCode != 400 || !strings.Contains(e.Error.Message, field) {
			t.Errorf("%s: %d %s, want a 400 naming %s", body, resp.StatusCode, b, field)
		}
	}
	for _, body := range []string{
		`{` + msgs + `,"logprobs":false,"top_logprobs":0,"store":false,"modalities":["text"]}`,
		`{` + msgs + `,"frequency_penalty":1.5,"presence_penalty":-1,"logit_bias":{"5":-100,"7":3}}`,
		`{"prompt":"x","max_tokens":2,"echo":false,"best_of":1,"logprobs":null}`,
	} {
		path := "/v1/chat/completions"
		if strings.Contains(body, "prompt") {
			path = "/v1/completions"
		}
		if resp, b := ts.Post(t, path, body); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	for body, field := range map[string]string{
		`{"prompt":"x","echo":true}`:      "echo",
		`{"prompt":"x","best_of":3}`:      "best_of",
		`{"prompt":"x","logprobs":21}`:    "logprobs",
		`{"prompt":"x","top_logprobs":2}`: "top_logprobs",
	} {
		if resp, b := ts.Post(t, "/v1/completions", body); resp.StatusCode != 400 || !strings.Contains(string(b), field) {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
}

func TestRetrieveModel(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	for path, want := range map[string]int{"/v1/models/tiny": 200, "/v1/models/tiny:latest": 200, "/v1/models/gpt-4o": 404, "/v1/models/org/x": 404} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			ID     string `json:"id"`
			Object string `json:"object"`
			Error  *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && (m.ID != "tiny" || m.Object != "model") || want == 404 && (m.Error == nil || m.Error.Code != "model_not_found") {
			t.Errorf("%s: %d %+v", path, resp.StatusCode, m)
		}
	}
}

func TestEmbeddings(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 128}, openai.Register)
	resp, b := ts.Post(t, "/v1/embeddings", `{"model":"tiny","input":["def f(): pass","hello"]}`)
	var r struct {
		Object string `json:"object"`
		Data   []struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
	}
	if r.Object != "list" || len(r.Data) != 2 || r.Data[1].Index != 1 || len(r.Data[0].Embedding) == 0 || r.Usage.PromptTokens < 2 {
		t.Errorf("response %+v", r)
	}
	recs := ts.Records()
	if len(recs) != 1 || recs[0].Operation != "embeddings" || recs[0].Result.PromptTokens != r.Usage.PromptTokens {
		t.Errorf("records %+v", recs)
	}
	resp, b = ts.Post(t, "/v1/embeddings", `{"input":"x","encoding_format":"base64"}`)
	var b64 struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	json.Unmarshal(b, &b64)
	if resp.StatusCode != 200 || len(b64.Data) != 1 || len(b64.Data[0].Embedding) != base64Len(4*len(r.Data[0].Embedding)) {
		t.Errorf("base64: %d %.200s", resp.StatusCode, b)
	}
	for body, field := range map[string]string{
		`{"input":[]}`:                         "input",
		`{"input":5}`:                          "input",
		`{"input":"x","dimensions":8}`:         "dimensions",
		`{"input":"x","encoding_format":"i8"}`: "encoding_format",
		`{"input":["` + strings.Repeat("lorem ipsum ", 100) + `"]}`: "input 0",
	} {
		if resp, b := ts.Post(t, "/v1/embeddings", body); resp.StatusCode != 400 || !strings.Contains(string(b), field) {
			t.Errorf("%.60s: %d %s", body, resp.StatusCode, b)
		}
	}
}

func base64Len(n int) int { return (n + 2) / 3 * 4 }
