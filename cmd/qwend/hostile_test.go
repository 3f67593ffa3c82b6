package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The inputs of the hostile-input report, each against the real daemon,
// which must answer each one properly and still serve afterwards.

func alive(t *testing.T, ts *testServer) {
	t.Helper()
	resp, b := post(t, ts.URL+"/v1/completions", `{"prompt":"still there?","max_tokens":2,"temperature":0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("daemon no longer serves: %d %s", resp.StatusCode, b)
	}
}

// Long unbroken runs of one kind of character once overflowed llama.cpp's
// regex stack during tokenization and killed the process.
func TestPathologicalRunsDoNotCrash(t *testing.T) {
	const limit = 256 << 10
	ts := startServer(t, nil, "--max-body-bytes", fmt.Sprint(limit), "--ctx-size", "512")
	runs := map[string]string{"letters": "a", "digits": "7", "spaces": " ", "newlines": "\n", "punctuation": "!",
		"accented": "é", "cjk": "漢", "tabs": "\t", "mixed-symbols": "<|", "emoji": "😀"}
	for name, unit := range runs {
		// the largest run that fits the body limit with the JSON around it
		escaped, _ := json.Marshal(unit)
		n := (limit - 200) / (len(escaped) - 2)
		text, _ := json.Marshal(strings.Repeat(unit, n))
		for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/api/generate"} {
			t.Run(name+path, func(t *testing.T) {
				var body string
				switch path {
				case "/v1/chat/completions":
					body = fmt.Sprintf(`{"messages":[{"role":"user","content":%s}],"max_tokens":1}`, text)
				case "/v1/completions":
					body = fmt.Sprintf(`{"prompt":%s,"max_tokens":1}`, text)
				default:
					body = fmt.Sprintf(`{"prompt":%s,"stream":false,"options":{"num_predict":1}}`, text)
				}
				resp, b := post(t, ts.URL+path, body)
				// far more tokens than a 512-token context: refused by size, not by a crash
				if resp.StatusCode != 400 || !strings.Contains(string(b), "context") {
					t.Errorf("status %d: %.200s", resp.StatusCode, b)
				}
			})
		}
	}
	alive(t, ts)
}

func TestHostileNumbersAndKeys(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		name, path, body string
		status           int
		mention          string
	}{
		{"max_tokens 2^63-1", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775807}`, 400, `"max_tokens"`},
		{"num_predict 2^63-1", "/api/generate", `{"prompt":"hi","options":{"num_predict":9223372036854775807}}`, 400, `"options.num_predict"`},
		{"max_tokens 2^63", "/v1/completions", `{"prompt":"hi","max_tokens":9223372036854775808}`, 400, `"max_tokens"`},
		{"duplicate key", "/v1/completions", `{"prompt":"hi","max_tokens":1,"max_tokens":40}`, 400, `"max_tokens"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, ts.URL+tc.path, tc.body)
			var e struct{ Error struct{ Message string } } // OpenAI's shape
			var o struct{ Error string }                   // Ollama's
			if json.Unmarshal(b, &o) == nil {
				e.Error.Message = o.Error
			} else {
				json.Unmarshal(b, &e)
			}
			if resp.StatusCode != tc.status || !strings.Contains(e.Error.Message, tc.mention) {
				t.Errorf("status %d body %s, want %d naming %s", resp.StatusCode, b, tc.status, tc.mention)
			}
		})
	}
	// a case-folded key does not override: one token, not forty
	for _, body := range []string{
		`{"prompt":"hi","max_tokens":1,"MAX_TOKENS":40,"temperature":0}`,
		`{"prompt":"hi","max_tokens":1,"maX_tokenſ":40,"temperature":0}`,
	} {
		resp, b := post(t, ts.URL+"/v1/completions", body)
		var r struct {
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		json.Unmarshal(b, &r)
		if resp.StatusCode != 200 || r.Usage.CompletionTokens != 1 {
			t.Errorf("%s: status %d, %d tokens, want 1", body, resp.StatusCode, r.Usage.CompletionTokens)
		}
	}
	// every refusal above is in the service log as an error, not a success
	var errs int
	sc := bufio.NewScanner(strings.NewReader(ts.Service.String()))
	for sc.Scan() {
		var m map[string]any
		json.Unmarshal(sc.Bytes(), &m)
		if m["status"] == "error" && m["error_type"] == "invalid_request" {
			errs++
		}
	}
	if errs != 4 {
		t.Errorf("%d invalid_request lines in the service log, want 4:\n%s", errs, ts.Service.String())
	}
	alive(t, ts)
}

// top_p 0 and min_p 1 keep only the most probable token: with temperature
// 1 they give the greedy output, whatever the seed.
func TestSamplingEdgesAreGreedy(t *testing.T) {
	ts := startServer(t, nil)
	text := func(body string) string {
		t.Helper()
		resp, b := post(t, ts.URL+"/v1/completions", body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var r struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		json.Unmarshal(b, &r)
		return r.Choices[0].Text
	}
	greedy := text(`{"prompt":"edge","max_tokens":12,"temperature":0}`)
	for seed := range 4 {
		for _, knob := range []string{`"top_p":0`, `"min_p":1`} {
			got := text(fmt.Sprintf(`{"prompt":"edge","max_tokens":12,"temperature":1,"seed":%d,%s}`, seed, knob))
			if got != greedy {
				t.Errorf("%s seed %d: %q, want the greedy %q", knob, seed, got, greedy)
			}
		}
	}
}

// No client-controlled value becomes a metric attribute: 5,000 requests
// with distinct Host, User-Agent, query and forwarding headers leave the
// number of series unchanged.
func TestClientValuesDoNotGrowTheMetrics(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	ts := startServer(t, nil, "--otel", "on", "--shutdown-timeout", "1s")
	series := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+"/metrics", nil)
		req.Header.Set("Accept", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				n++
			}
		}
		return n
	}
	get := func(i int) {
		req, _ := http.NewRequest("GET", ts.URL+fmt.Sprintf("/healthz?q=%d", i), nil)
		req.Host = fmt.Sprintf("host-%d.example", i)
		req.Header.Set("User-Agent", fmt.Sprintf("agent/%d", i))
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.%d.%d", i/256%256, i%256))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(-1)
	series() // the scrape itself is a series of its own
	before := series()
	for i := range 5000 {
		get(i)
	}
	if after := series(); after != before {
		t.Errorf("%d series after 5,000 distinct client values, %d before", after, before)
	}
}

// SIGTERM with a stream running past the drain deadline: the stream ends
// with a shutdown error event, its service log line says so, and serve
// returns an error (the process exits non-zero).
func TestDrainDeadlineCutsStreamsVisibly(t *testing.T) {
	cfg, err := parseServeConfig([]string{"--model", modelPath, "--threads", "1", "--ctx-size", "4096", "--otel", "off", "--ledger", "off",
		"--shutdown-timeout", "300ms"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.listener, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + cfg.listener.Addr().String()
	service := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, service, io.Discard) }()
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond) // polling readiness
	}
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"long","max_tokens":4000,"temperature":0,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel() // SIGTERM
	rest, _ := io.ReadAll(r)
	serr := <-done
	if serr == nil || !strings.Contains(serr.Error(), "1 requests were cut") {
		t.Errorf("serve returned %v", serr)
	}
	if !strings.Contains(string(rest), `"code":"shutdown"`) {
		t.Errorf("stream end: %.300s", rest)
	}
	if !strings.Contains(service.String(), `"error_type":"shutdown"`) {
		t.Errorf("service log: %s", service.String())
	}
}
