package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/gpu"
	"github.com/qwend/qwend/synth"
)

var modelPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qwend-cmd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelPath = filepath.Join(dir, "tiny.gguf")
	if err := synth.WriteTiny(context.Background(), modelPath, 1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testServer struct {
	URL     string
	Service *syncBuffer // the service log
	Diag    *syncBuffer
	// Stop shuts the server down and checks it exited cleanly; the test's
	// cleanup calls it too.
	Stop func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs qwend serve in-process on a loopback listener, waits for
// /readyz, and stops it (checking a clean exit) when the test ends.
func startServer(t testing.TB, env map[string]string, args ...string) *testServer {
	t.Helper()
	return startServerOn(t, nil, env, args...)
}

// startServerOn is startServer with the listener passed through wrap (nil:
// as it is).
func startServerOn(t testing.TB, wrap func(net.Listener) net.Listener, env map[string]string, args ...string) *testServer {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	cfg, err := parseServeConfig(append([]string{"--model", modelPath, "--model-name", "tiny", "--threads", "1", "--ctx-size", "512", "--otel", "off", "--ledger", "off"}, args...), getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.listener, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		cfg.listener = wrap(cfg.listener)
	}
	ts := &testServer{URL: "http://" + cfg.listener.Addr().String(), Service: &syncBuffer{}, Diag: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ts.Service, ts.Diag) }()
	var once sync.Once
	ts.Stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve returned %v", err)
			}
		})
	}
	t.Cleanup(ts.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ts.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ts
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s: %v\n%s", err, ts.Diag.String())
		}
		time.Sleep(10 * time.Millisecond) // polling readiness, not synchronising with a result
	}
}

func post(t *testing.T, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type chatResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message      struct{ Role, Content string } `json:"message"`
		Delta        struct{ Role, Content string } `json:"delta"`
		Text         string                         `json:"text"`
		FinishReason *string                        `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

func TestOpenAIChatWholeAndStreamedAgree(t *testing.T) {
	ts := startServer(t, nil)
	body := `{"model":"tiny","messages":[{"role":"system","content":"You write Go."},{"role":"user","content":"Write fizzbuzz."}],"max_tokens":12,"temperature":0}`
	resp, b := post(t, ts.URL+"/v1/chat/completions", body, "X-Request-Id", "client-id-1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "client-id-1" {
		t.Errorf("X-Request-Id %q, want the client's", got)
	}
	var whole chatResponse
	if err := json.Unmarshal(b, &whole); err != nil {
		t.Fatal(err)
	}
	if whole.Object != "chat.completion" || whole.Model != "tiny" || len(whole.Choices) != 1 || whole.Usage == nil {
		t.Fatalf("response %s", b)
	}
	if whole.Usage.CompletionTokens != 12 || *whole.Choices[0].FinishReason != "length" || whole.Choices[0].Message.Role != "assistant" {
		t.Errorf("usage %+v finish %v", whole.Usage, *whole.Choices[0].FinishReason)
	}
	if whole.Usage.TotalTokens != whole.Usage.PromptTokens+whole.Usage.CompletionTokens {
		t.Errorf("usage does not add up: %+v", whole.Usage)
	}

	// the same request streamed gives the same text and usage
	streamBody := strings.Replace(body, `"temperature":0`, `"temperature":0,"stream":true,"stream_options":{"include_usage":true}`, 1)
	resp, b = post(t, ts.URL+"/v1/chat/completions", streamBody)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var text strings.Builder
	var last chatResponse
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", events[len(events)-1])
	}
	finishes := 0
	for _, ev := range events[:len(events)-1] {
		var c chatResponse
		if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if c.Object != "chat.completion.chunk" {
			t.Errorf("chunk object %q", c.Object)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finishes++
			}
		}
		last = c
	}
	if finishes != 1 {
		t.Errorf("%d chunks with a finish reason, want 1", finishes)
	}
	if text.String() != whole.Choices[0].Message.Content {
		t.Errorf("streamed %q, whole %q", text.String(), whole.Choices[0].Message.Content)
	}
	if last.Usage == nil || last.Usage.CompletionTokens != whole.Usage.CompletionTokens || last.Usage.PromptTokens != whole.Usage.PromptTokens {
		t.Errorf("final usage %+v, want %+v", last.Usage, whole.Usage)
	}
	if last.Usage.PromptTokensDetails.CachedTokens == 0 {
		t.Error("repeated prompt reported no cached tokens")
	}
}

// Streamed completion events after the first are rendered from a template:
// they carry the same fields as the first and add up to the whole text.
func TestCompletionsWholeAndStreamedAgree(t *testing.T) {
	ts := startServer(t, nil)
	body := `{"prompt":"<b>fizz & buzz</b>\n\"quoted\"","max_tokens":16,"temperature":0}`
	resp, b := post(t, ts.URL+"/v1/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var whole chatResponse
	if err := json.Unmarshal(b, &whole); err != nil || len(whole.Choices) != 1 {
		t.Fatalf("response %s: %v", b, err)
	}
	_, b = post(t, ts.URL+"/v1/completions", strings.Replace(body, `"temperature":0`, `"temperature":0,"stream":true`, 1))
	events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
	if len(events) < 4 || events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream %q", b)
	}
	var text strings.Builder
	var id string
	for i, ev := range events[:len(events)-1] {
		var c chatResponse
		if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &c); err != nil {
			t.Fatalf("event %d %q: %v", i, ev, err)
		}
		if i == 0 {
			id = c.ID
		}
		if c.ID != id || id == "" || c.Object != "text_completion" || c.Model != "tiny" || len(c.Choices) != 1 {
			t.Fatalf("event %d %q", i, ev)
		}
		text.WriteString(c.Choices[0].Text)
	}
	if text.String() != whole.Choices[0].Text {
		t.Errorf("streamed %q, whole %q", text.String(), whole.Choices[0].Text)
	}
}

func TestCompletionsWithSuffixAndModels(t *testing.T) {
	ts := startServer(t, nil)
	resp, b := post(t, ts.URL+"/v1/completions", `{"prompt":"def add(a, b):\n    ","suffix":"\n    return c","max_tokens":5,"temperature":0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var c chatResponse
	json.Unmarshal(b, &c)
	if c.Object != "text_completion" || c.Usage.CompletionTokens != 5 {
		t.Errorf("completion %s", b)
	}
	// the FIM prompt holds three control tokens plus the text
	resp, b = post(t, ts.URL+"/v1/completions", `{"prompt":"def add(a, b):\n    ","max_tokens":5,"temperature":0}`)
	var plain chatResponse
	json.Unmarshal(b, &plain)
	if c.Usage.PromptTokens <= plain.Usage.PromptTokens {
		t.Errorf("FIM prompt %d tokens, plain %d: suffix ignored?", c.Usage.PromptTokens, plain.Usage.PromptTokens)
	}
	r, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	json.NewDecoder(r.Body).Decode(&models)
	if len(models.Data) != 1 || models.Data[0].ID != "tiny" {
		t.Errorf("models %+v", models)
	}
}

func TestOllamaGenerateAndChat(t *testing.T) {
	ts := startServer(t, nil)
	resp, b := post(t, ts.URL+"/api/generate", `{"model":"tiny","prompt":"hello","options":{"num_predict":6,"temperature":0}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	final := lines[len(lines)-1]
	if final["done"] != true || final["eval_count"] != float64(6) || final["done_reason"] != "length" {
		t.Errorf("final line %v", final)
	}
	for _, k := range []string{"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"} {
		if _, ok := final[k]; !ok {
			t.Errorf("final line lacks %s", k)
		}
	}
	if total, eval := final["total_duration"].(float64), final["eval_duration"].(float64); total <= 0 || eval > total {
		t.Errorf("durations total %v eval %v", total, eval)
	}

	resp, b = post(t, ts.URL+"/api/chat", `{"model":"tiny","stream":false,"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":4,"temperature":0}}`)
	var chat struct {
		Message   struct{ Role, Content string }
		Done      bool
		EvalCount int `json:"eval_count"`
	}
	if err := json.Unmarshal(b, &chat); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if !chat.Done || chat.Message.Role != "assistant" || chat.EvalCount != 4 {
		t.Errorf("chat %+v", chat)
	}
}

func TestErrorShapes(t *testing.T) {
	ts := startServer(t, nil, "--ctx-size", "64", "--max-body-bytes", "2048")
	for _, tc := range []struct {
		name, path, body string
		status           int
		typ, mention     string
	}{
		{"malformed json", "/v1/chat/completions", `{"messages":`, 400, "invalid_request_error", "malformed JSON"},
		{"empty body", "/v1/chat/completions", ``, 400, "invalid_request_error", "empty"},
		{"wrong type names field", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, 400, "invalid_request_error", "max_tokens"},
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404, "invalid_request_error", "gpt-9"},
		{"bad temperature", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"temperature":7}`, 400, "invalid_request_error", "temperature"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "invalid_request_error", "messages"},
		{"bad role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "invalid_request_error", "role"},
		{"bad stop", "/v1/completions", `{"prompt":"x","stop":5}`, 400, "invalid_request_error", "stop"},
		{"n above one", "/v1/completions", `{"prompt":"x","n":2}`, 400, "invalid_request_error", "\"n\""},
		{"context window", "/v1/completions", `{"prompt":"` + strings.Repeat("lorem ipsum ", 100) + `","max_tokens":5}`, 400, "invalid_request_error", "context"},
		{"body too large", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 4096) + `"}`, 413, "invalid_request_error", "2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, ts.URL+tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("error body %q: %v", b, err)
			}
			if e.Error.Type != tc.typ || !strings.Contains(e.Error.Message, tc.mention) {
				t.Errorf("error %+v, want type %q mentioning %q", e.Error, tc.typ, tc.mention)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on an error")
			}
		})
	}
	// Ollama's routes answer Ollama's shape, {"error":"<message>"}, and an
	// unknown path answers its API's shape with a request id
	for _, tc := range []struct {
		path, body, mention string
		status              int
		ollama              bool
	}{
		{"/api/generate", `{"prompt":"x","options":{"top_p":3}}`, "options.top_p", 400, true},
		{"/api/chat", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, "no-such-model", 404, true},
		{"/api/nope", `{}`, "/api/nope", 404, true},
		{"/v1/nope", `{}`, "/v1/nope", 404, false},
	} {
		resp, b := post(t, ts.URL+tc.path, tc.body)
		var o struct{ Error string }
		var e struct{ Error struct{ Message string } }
		msg := ""
		if tc.ollama && json.Unmarshal(b, &o) == nil {
			msg = o.Error
		} else if !tc.ollama && json.Unmarshal(b, &e) == nil {
			msg = e.Error.Message
		}
		if resp.StatusCode != tc.status || !strings.Contains(msg, tc.mention) || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: %d %s (request id %q), want %d naming %s", tc.path, resp.StatusCode, b, resp.Header.Get("X-Request-Id"), tc.status, tc.mention)
		}
	}
	// the daemon still serves after all that
	resp, b := post(t, ts.URL+"/v1/completions", `{"prompt":"ok","max_tokens":2}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after errors: %d %s", resp.StatusCode, b)
	}
}

func TestQueueFullIs429WithRetryAfter(t *testing.T) {
	ts := startServer(t, nil, "--parallel", "1", "--queue-length", "0", "--ctx-size", "4096")
	// hold the only slot with a long streamed request, read its first event
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"go","max_tokens":4000,"temperature":0,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	r2, b := post(t, ts.URL+"/v1/completions", `{"prompt":"x","max_tokens":2}`)
	if r2.StatusCode != 429 || r2.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "queue_full") {
		t.Errorf("status %d retry-after %q body %s", r2.StatusCode, r2.Header.Get("Retry-After"), b)
	}
	// the client going away frees the slot
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r3, b := post(t, ts.URL+"/v1/completions", `{"prompt":"x","max_tokens":2}`)
		if r3.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed after disconnect: %d %s", r3.StatusCode, b)
		}
		time.Sleep(5 * time.Millisecond) // polling until the scheduler's next step
	}
}

func TestServiceLogAndMetricsJSON(t *testing.T) {
	ts := startServer(t, nil)
	var outputs int
	for i := range 3 {
		_, b := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"prompt":"n%d","max_tokens":%d}`, i, i+2), "X-Request-Id", fmt.Sprintf("rid-%d", i))
		var c chatResponse
		json.Unmarshal(b, &c)
		outputs += c.Usage.CompletionTokens
	}
	post(t, ts.URL+"/v1/completions", `{"prompt":"`+strings.Repeat("lorem ipsum ", 500)+`","max_tokens":5}`)

	lines := strings.Split(strings.TrimSpace(ts.Service.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d service log lines, want 4:\n%s", len(lines), ts.Service.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"event", "status", "timestamp", "request_id", "latency_ms", "tokens_generated", "tokens_per_second", "prompt_tokens", "max_new_tokens", "temperature", "gpu", "model"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i, k, l)
			}
		}
		if i < 3 && (m["status"] != "success" || m["request_id"] != fmt.Sprintf("rid-%d", i)) {
			t.Errorf("line %d: %s", i, l)
		}
		if i == 3 && (m["status"] != "error" || m["error_type"] != "context_window_exceeded") {
			t.Errorf("error line: %s", l)
		}
	}
	r, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var mj struct {
		RequestsTotal        int     `json:"requests_total"`
		ErrorsTotal          int     `json:"errors_total"`
		TokensGeneratedTotal int     `json:"tokens_generated_total"`
		P95LatencyMS         float64 `json:"p95_latency_ms"`
		AverageLatencyMS     float64 `json:"average_latency_ms"`
		LastRequestAt        *string `json:"last_request_at"`
		GPU                  struct {
			Devices []map[string]any `json:"devices"`
		} `json:"gpu"`
	}
	if err := json.NewDecoder(r.Body).Decode(&mj); err != nil {
		t.Fatal(err)
	}
	if mj.RequestsTotal != 4 || mj.ErrorsTotal != 1 || mj.TokensGeneratedTotal != outputs || mj.LastRequestAt == nil {
		t.Errorf("metrics %+v (outputs %d)", mj, outputs)
	}
	if mj.P95LatencyMS <= 0 || mj.AverageLatencyMS <= 0 {
		t.Errorf("latency stats %+v", mj)
	}
	if len(mj.GPU.Devices) == 0 {
		t.Error("no gpu devices (NVML or fallback) in /metrics")
	}
	// with --otel off nothing is exported, but Prometheus can still scrape
	req, _ := http.NewRequest("GET", ts.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	pr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Body.Close()
	text, _ := io.ReadAll(pr.Body)
	if pr.StatusCode != 200 || !strings.Contains(string(text), `qwend_requests_total{error_type="context_window_exceeded"`) {
		t.Errorf("Prometheus text with --otel off: %d %.300s", pr.StatusCode, text)
	}
}

func TestPrometheusExposition(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // nothing listens: export fails quietly
	ts := startServer(t, nil, "--otel", "on", "--shutdown-timeout", "1s")
	post(t, ts.URL+"/v1/completions", `{"prompt":"hi","max_tokens":3}`)
	req, _ := http.NewRequest("GET", ts.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"gen_ai_server_request_duration_seconds_bucket",
		"gen_ai_server_time_to_first_token_seconds_bucket",
		`qwend_tokens_total{gen_ai_provider_name="qwend",gen_ai_request_model="tiny",gen_ai_token_type="output"`,
		"qwend_requests_total",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	// GPU memory series come from GPUs alone: NVML's, or without it ggml's
	// GPU devices, never ggml's CPU device (the host's memory)
	probe := gpu.New(context.Background(), gpu.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer probe.Close()
	gpus := probe.Available() || slices.ContainsFunc(engine.BackendDevices(), func(d engine.BackendDevice) bool { return d.Type == "gpu" || d.Type == "igpu" })
	if got := strings.Contains(string(b), "hw_gpu_memory_limit_bytes"); got != gpus {
		t.Errorf("hw_gpu_memory_limit_bytes in the exposition: %v; ggml has a GPU device: %v", got, gpus)
	}
}

func TestCPUProfileWrittenAtShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	ts := startServer(t, nil, "--cpu-profile", path)
	if resp, b := post(t, ts.URL+"/v1/completions", `{"prompt":"hi","max_tokens":4,"temperature":0}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	ts.Stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// a pprof profile is gzipped protobuf
	if len(b) < 20 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("%s is not a pprof profile (%d bytes)", path, len(b))
	}

	cfg, err := parseServeConfig([]string{"--model", modelPath, "--otel", "off", "--cpu-profile", filepath.Join(t.TempDir(), "missing", "cpu.pprof")}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), cfg, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--cpu-profile (QWEND_CPU_PROFILE)") {
		t.Errorf("unwritable profile path: %v", err)
	}
}

// A request refused by validation ends like any other: one service log line
// with its request id, a request metric series with its error.type, and the
// /metrics JSON error count.
func TestRefusedRequestIsRecordedOnce(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	ts := startServer(t, nil, "--otel", "on", "--shutdown-timeout", "1s")
	resp, b := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, "X-Request-Id", "refused-1")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	lines := strings.Split(strings.TrimSpace(ts.Service.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d service log lines, want 1:\n%s", len(lines), ts.Service.String())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line["request_id"] != "refused-1" || line["status"] != "error" || line["error_type"] != "invalid_request" ||
		line["http_status"] != 400.0 || line["trace_id"] == nil {
		t.Errorf("log line %s", lines[0])
	}
	req, _ := http.NewRequest("GET", ts.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{
		`qwend_requests_total{error_type="invalid_request",gen_ai_operation_name="chat"`,
		`gen_ai_server_request_duration_seconds_count{error_type="invalid_request",gen_ai_operation_name="chat"`,
	} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	r, err = http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var mj struct {
		RequestsTotal int              `json:"requests_total"`
		ErrorsTotal   int              `json:"errors_total"`
		ErrorsByType  map[string]int64 `json:"errors_by_type"`
	}
	if err := json.NewDecoder(r.Body).Decode(&mj); err != nil {
		t.Fatal(err)
	}
	if mj.RequestsTotal != 1 || mj.ErrorsTotal != 1 || mj.ErrorsByType["invalid_request"] != 1 {
		t.Errorf("metrics JSON %+v", mj)
	}
}

// --kv-unified on: the two slots share one KV cache of 2 x --ctx-size
// tokens, from which one request may take all (up to the trained
// context): a prompt longer than a slot's part runs, and /v1/models gives
// the per-request limit. With off, the same prompt is over the context.
func TestKVUnifiedServesALongRequest(t *testing.T) {
	prompt := `{"prompt":"` + strings.Repeat("lorem ipsum ", 60) + `","max_tokens":8,"temperature":0}` // about 480 tokens
	on := startServer(t, nil, "--ctx-size", "384", "--parallel", "2", "--kv-unified", "on")
	var models struct {
		Data []struct {
			ContextLength int `json:"context_length"`
		} `json:"data"`
	}
	resp, err := http.Get(on.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if len(models.Data) != 1 || models.Data[0].ContextLength != 768 {
		t.Errorf("models %+v: want a context of 768", models)
	}
	if !strings.Contains(on.Diag.String(), `"shared_kv_tokens":768`) {
		t.Errorf("no start-up line for the shared cache:\n%s", on.Diag.String())
	}
	if resp, b := post(t, on.URL+"/v1/completions", prompt); resp.StatusCode != 200 || !strings.Contains(string(b), `"finish_reason":"length"`) {
		t.Errorf("shared cache: %d %s", resp.StatusCode, b)
	}
	off := startServer(t, nil, "--ctx-size", "384", "--parallel", "2", "--kv-unified", "off")
	if resp, b := post(t, off.URL+"/v1/completions", prompt); resp.StatusCode != 400 || !strings.Contains(string(b), "context_length_exceeded") {
		t.Errorf("a slot's own 384 tokens: %d %s", resp.StatusCode, b)
	}
	if _, err := parseServeConfig([]string{"--model", modelPath, "--kv-unified", "maybe"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "--kv-unified") {
		t.Errorf("--kv-unified maybe: %v", err)
	}
}

// By default a slot gets the model's trained context (the tiny model's
// 8192), shown in /v1/models and /readyz; --ctx-size above it is refused.
func TestContextDefaultsToTheTrainedContext(t *testing.T) {
	ts := startServer(t, nil, "--ctx-size", "0", "--parallel", "2")
	var models struct {
		Data []struct {
			ContextLength int `json:"context_length"`
			MaxModelLen   int `json:"max_model_len"`
		} `json:"data"`
	}
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if len(models.Data) != 1 || models.Data[0].ContextLength != 8192 || models.Data[0].MaxModelLen != 8192 {
		t.Errorf("models %+v", models)
	}
	if !strings.Contains(ts.Diag.String(), `"msg":"context per slot","tokens":8192`) {
		t.Errorf("no start-up line for the context plan:\n%s", ts.Diag.String())
	}
	// a prompt of 1,600 tokens (above the old default of 512) fits now
	resp2, b := post(t, ts.URL+"/v1/completions", `{"prompt":"`+strings.Repeat("lorem ipsum ", 200)+`","max_tokens":4,"temperature":0}`)
	if resp2.StatusCode != 200 {
		t.Errorf("long prompt: %d %s", resp2.StatusCode, b)
	}

	cfg, err := parseServeConfig([]string{"--model", modelPath, "--otel", "off", "--ledger", "off", "--ctx-size", "65536"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), cfg, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--ctx-size (QWEND_CTX_SIZE): 65536 is above the 8192 tokens") {
		t.Errorf("ctx-size above the trained context: %v", err)
	}
}
