// Package e2e runs qwend against a real OpenTelemetry Collector, Jaeger and
// Prometheus, configured by the same files the compose stack ships. It runs
// when QWEND_E2E_BACKENDS names the folder of backend binaries that
// scripts/e2e-backends.sh builds, and QWEND_E2E_BIN the qwend binary
// (scripts/e2e.sh sets both).
package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var root = func() string { d, _ := filepath.Abs(".."); return d }()

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// start runs a backend with its output in a log file, stopped at cleanup.
func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath}
	t.Cleanup(func() {
		p.stop()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log tail:\n%s", name, b)
		}
	})
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// eventually polls cond until it returns nil or the deadline passes: the
// backends ingest asynchronously, so the test waits on their state.
func eventually(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, d, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

func waitHTTP(t *testing.T, what, u string) {
	t.Helper()
	eventually(t, what+" ready", 60*time.Second, func() error {
		resp, err := http.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// sent is one request and what its response said.
type sent struct {
	name, traceID      string
	requestID          string // X-Request-Id
	status             int
	prompt, completion int
	operation          string
}

func newTraceparent() (string, string) {
	var b [24]byte
	rand.Read(b[:])
	tid, sid := hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return tid, "00-" + tid + "-" + sid + "-01"
}

func send(t *testing.T, base, name, path, body, operation string) sent {
	t.Helper()
	tid, tp := newTraceparent()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", tp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s := sent{name: name, traceID: tid, status: resp.StatusCode, operation: operation, requestID: resp.Header.Get("X-Request-Id")}
	if resp.StatusCode != 200 {
		return s
	}
	// the usage, however this API reports it
	var lines [][]byte
	switch {
	case bytes.HasPrefix(b, []byte("data: ")):
		for _, ev := range bytes.Split(bytes.TrimSpace(b), []byte("\n\n")) {
			lines = append(lines, bytes.TrimPrefix(ev, []byte("data: ")))
		}
	default:
		lines = bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	}
	for _, l := range lines {
		var u struct {
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Done            bool `json:"done"`
			PromptEvalCount int  `json:"prompt_eval_count"`
			EvalCount       int  `json:"eval_count"`
		}
		if json.Unmarshal(l, &u) != nil {
			continue
		}
		if u.Usage != nil {
			s.prompt, s.completion = u.Usage.PromptTokens, u.Usage.CompletionTokens
		}
		if u.Done {
			s.prompt, s.completion = u.PromptEvalCount, u.EvalCount
		}
	}
	if s.completion == 0 {
		t.Fatalf("%s: no usage in response %s", name, b)
	}
	return s
}

func TestEndToEnd(t *testing.T) {
	backends, bin := os.Getenv("QWEND_E2E_BACKENDS"), os.Getenv("QWEND_E2E_BIN")
	if backends == "" || bin == "" {
		t.Skip("QWEND_E2E_BACKENDS and QWEND_E2E_BIN are not set: run scripts/e2e.sh (make e2e)")
	}
	ports := map[string]string{}
	for _, k := range []string{"jaeger_health", "jaeger_query", "jaeger_query_grpc", "jaeger_otlp", "jaeger_otlp_http",
		"col_health", "col_grpc", "col_http", "prom", "qwend"} {
		ports[k] = freePort(t)
	}
	loop := func(k string) string { return "127.0.0.1:" + ports[k] }

	// backends first, then the collector: an exporter that finds its backend
	// down backs off for a long time
	start(t, "jaeger", []string{
		"JAEGER_HEALTH_ENDPOINT=" + loop("jaeger_health"), "JAEGER_QUERY_HTTP_ENDPOINT=" + loop("jaeger_query"),
		"JAEGER_QUERY_GRPC_ENDPOINT=" + loop("jaeger_query_grpc"), "JAEGER_OTLP_GRPC_ENDPOINT=" + loop("jaeger_otlp"),
		"JAEGER_OTLP_HTTP_ENDPOINT=" + loop("jaeger_otlp_http"),
	}, filepath.Join(backends, "jaeger"), "--config", filepath.Join(root, "deploy/jaeger/jaeger.yaml"))
	start(t, "prometheus", nil, "prometheus",
		"--config.file="+filepath.Join(root, "deploy/prometheus/prometheus.yml"),
		"--storage.tsdb.path="+t.TempDir(), "--web.listen-address="+loop("prom"),
		"--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage")
	waitHTTP(t, "jaeger", "http://"+loop("jaeger_query")+"/api/services")
	waitHTTP(t, "prometheus", "http://"+loop("prom")+"/-/ready")
	collector := start(t, "collector", []string{
		"COLLECTOR_HEALTH_ENDPOINT=" + loop("col_health"), "COLLECTOR_OTLP_GRPC_ENDPOINT=" + loop("col_grpc"),
		"COLLECTOR_OTLP_HTTP_ENDPOINT=" + loop("col_http"), "JAEGER_OTLP_ENDPOINT=" + loop("jaeger_otlp"),
		"TEMPO_OTLP_ENDPOINT=" + loop("jaeger_otlp"), // no Tempo here: a second copy to Jaeger keeps the exporter healthy
		"PROMETHEUS_REMOTE_WRITE_URL=http://" + loop("prom") + "/api/v1/write", "COLLECTOR_SELF_METRICS_LEVEL=none",
	}, filepath.Join(backends, "otelcol-qwend"), "--config", filepath.Join(root, "collector-config/otelcol.yaml"))
	waitHTTP(t, "collector", "http://"+loop("col_health"))

	serviceLog := filepath.Join(t.TempDir(), "service.log")
	// prices make the cost series; the ledger is the default SQLite file,
	// under a data directory of the test's own
	prices := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(prices, []byte("version: e2e\nmodels:\n  \"*\":\n    input_per_million: 1\n    output_per_million: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	qw := start(t, "qwend", []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + loop("col_grpc"), "OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_METRIC_EXPORT_INTERVAL=1000", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=e2e",
		"XDG_DATA_HOME=" + t.TempDir(),
	}, bin, "serve", "--addr", loop("qwend"), "--cache-dir", t.TempDir(), "--log-file", serviceLog,
		"--threads", "1", "--ctx-size", "1024", "--shutdown-timeout", "5s", "--prices", prices)
	base := "http://" + loop("qwend")
	waitHTTP(t, "qwend", base+"/readyz")
	const model = "qwen2-synthetic-tiny"

	reqs := []sent{
		send(t, base, "openai chat", "/v1/chat/completions", `{"messages":[{"role":"user","content":"Write a Go function."}],"max_tokens":9,"temperature":0}`, "chat"),
		send(t, base, "openai chat stream", "/v1/chat/completions", `{"messages":[{"role":"user","content":"Explain"}],"max_tokens":7,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`, "chat"),
		send(t, base, "openai completion", "/v1/completions", `{"prompt":"def fib(n):","suffix":"    return a","max_tokens":5,"temperature":0}`, "text_completion"),
		send(t, base, "ollama generate stream", "/api/generate", `{"prompt":"hello","options":{"num_predict":6,"temperature":0}}`, "text_completion"),
		send(t, base, "ollama chat", "/api/chat", `{"stream":false,"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":4,"temperature":0}}`, "chat"),
		send(t, base, "refused: context window", "/v1/completions", `{"prompt":"`+strings.Repeat("far too long ", 1000)+`","max_tokens":5}`, "text_completion"),
	}
	n := len(reqs)
	var prompts, outputs int
	for _, r := range reqs[:n-1] {
		if r.status != 200 {
			t.Fatalf("%s: status %d", r.name, r.status)
		}
		prompts += r.prompt
		outputs += r.completion
	}
	if reqs[n-1].status != 400 {
		t.Fatalf("oversized request: status %d, want 400", reqs[n-1].status)
	}
	// feedback on the first answer makes the feedback series
	if resp, err := http.Post(base+"/v1/feedback", "application/json",
		strings.NewReader(`{"request_id":"`+reqs[0].requestID+`","label":"down","comment":"e2e"}`)); err != nil || resp.StatusCode != 201 {
		t.Fatalf("feedback: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	t.Run("jaeger holds every inference span under the client's trace", func(t *testing.T) {
		for _, r := range reqs {
			eventually(t, r.name, 60*time.Second, func() error { return checkTrace(loop("jaeger_query"), r, model) })
		}
	})

	t.Run("prometheus counts requests and tokens as the responses did", func(t *testing.T) {
		want := map[string]float64{
			`sum(qwend_requests_total)`: float64(n),
			`sum(qwend_requests_total{qwend_status="error",error_type="context_window_exceeded"})`: 1,
			`sum(gen_ai_server_request_duration_seconds_count)`:                                    float64(n),
			`sum(qwend_tokens_total{gen_ai_token_type="output"})`:                                  float64(outputs),
			`sum(qwend_tokens_total{gen_ai_token_type="input"})`:                                   float64(prompts),
			`sum(gen_ai_client_token_usage_sum{gen_ai_token_type="output"})`:                       float64(outputs),
		}
		for q, v := range want {
			eventually(t, q, 60*time.Second, func() error {
				got, err := promScalar(loop("prom"), q)
				if err != nil {
					return err
				}
				if got != v {
					return fmt.Errorf("%s = %v, want %v", q, got, v)
				}
				return nil
			})
		}
		// span metrics from the connector
		eventually(t, "span metrics", 60*time.Second, func() error {
			got, err := promScalar(loop("prom"), `sum(traces_span_metrics_calls_total{gen_ai_operation_name!=""})`)
			if err != nil {
				return err
			}
			if got < float64(n) {
				return fmt.Errorf("span metric calls %v < %d", got, n)
			}
			return nil
		})
	})

	t.Run("prometheus exemplars link to the request traces", func(t *testing.T) {
		ids := map[string]bool{}
		for _, r := range reqs {
			ids[r.traceID] = true
		}
		eventually(t, "exemplars", 60*time.Second, func() error {
			var out struct {
				Data []struct {
					Exemplars []struct {
						Labels map[string]string `json:"labels"`
					} `json:"exemplars"`
				} `json:"data"`
			}
			end := time.Now().Add(time.Minute)
			u := fmt.Sprintf("http://%s/api/v1/query_exemplars?query=%s&start=%d&end=%d", loop("prom"),
				url.QueryEscape("gen_ai_server_request_duration_seconds_bucket"), end.Add(-time.Hour).Unix(), end.Unix())
			if err := getJSON(u, &out); err != nil {
				return err
			}
			for _, s := range out.Data {
				for _, e := range s.Exemplars {
					if ids[e.Labels["trace_id"]] {
						return nil
					}
				}
			}
			return fmt.Errorf("no exemplar with one of our trace ids in %+v", out.Data)
		})
	})

	t.Run("service log has a line per inference with the trace ids", func(t *testing.T) {
		lines := readLines(t, serviceLog)
		if len(lines) != n {
			t.Fatalf("%d lines, want %d", len(lines), n)
		}
		seen := map[string]map[string]any{}
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			seen[m["trace_id"].(string)] = m
		}
		for _, r := range reqs {
			m := seen[r.traceID]
			if m == nil {
				t.Errorf("%s: no service log line with trace %s", r.name, r.traceID)
				continue
			}
			if r.status == 200 && (m["status"] != "success" || m["tokens_generated"] != float64(r.completion) || m["prompt_tokens"] != float64(r.prompt)) {
				t.Errorf("%s: line %v", r.name, m)
			}
			if r.status != 200 && (m["status"] != "error" || m["error_type"] != "context_window_exceeded") {
				t.Errorf("%s: line %v", r.name, m)
			}
		}
	})

	t.Run("metrics JSON agrees", func(t *testing.T) {
		var mj struct {
			RequestsTotal        int `json:"requests_total"`
			ErrorsTotal          int `json:"errors_total"`
			TokensGeneratedTotal int `json:"tokens_generated_total"`
			PromptTokensTotal    int `json:"prompt_tokens_total"`
		}
		if err := getJSON(base+"/metrics", &mj); err != nil {
			t.Fatal(err)
		}
		if mj.RequestsTotal != n || mj.ErrorsTotal != 1 || mj.TokensGeneratedTotal != outputs || mj.PromptTokensTotal != prompts {
			t.Errorf("/metrics %+v; want %d requests, 1 error, %d output and %d prompt tokens", mj, n, outputs, prompts)
		}
	})

	t.Run("dashboard queries name series prometheus holds", func(t *testing.T) {
		checkDashboard(t, loop("prom"))
	})

	t.Run("requests succeed with the collector down", func(t *testing.T) {
		collector.stop()
		for i := range 3 {
			r := send(t, base, fmt.Sprintf("after collector stop %d", i), "/v1/chat/completions",
				`{"messages":[{"role":"user","content":"still there?"}],"max_tokens":4,"temperature":0}`, "chat")
			if r.status != 200 {
				t.Fatalf("request %d with the collector down: status %d", i, r.status)
			}
		}
	})
	qw.stop()
	if code := qw.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("qwend exited %d after SIGINT", code)
	}
}

func checkTrace(jaeger string, r sent, model string) error {
	var out struct {
		Data []struct {
			Spans []struct {
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				Tags          []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
		} `json:"data"`
	}
	if err := getJSON("http://"+jaeger+"/api/traces/"+r.traceID, &out); err != nil {
		return err
	}
	if len(out.Data) == 0 {
		return fmt.Errorf("trace %s not found", r.traceID)
	}
	var found int
	for _, s := range out.Data[0].Spans {
		if s.OperationName != r.operation+" "+model {
			continue
		}
		found++
		tags := map[string]any{}
		for _, tg := range s.Tags {
			tags[tg.Key] = tg.Value
		}
		if tags["gen_ai.provider.name"] != "qwend" || tags["gen_ai.request.model"] != model || tags["gen_ai.operation.name"] != r.operation {
			return fmt.Errorf("span tags %v", tags)
		}
		if r.status == 200 {
			if tags["gen_ai.usage.output_tokens"] != float64(r.completion) || tags["gen_ai.usage.input_tokens"] != float64(r.prompt) {
				return fmt.Errorf("%s: span usage in=%v out=%v, response in=%d out=%d", r.name,
					tags["gen_ai.usage.input_tokens"], tags["gen_ai.usage.output_tokens"], r.prompt, r.completion)
			}
			if tags["gen_ai.response.finish_reasons"] == nil {
				return fmt.Errorf("no finish reasons on %v", tags)
			}
		} else if tags["error.type"] != "context_window_exceeded" || tags["otel.status_code"] != "ERROR" {
			return fmt.Errorf("failed request span tags %v", tags)
		}
	}
	if found != 1 {
		return fmt.Errorf("%d inference spans in trace %s, want 1", found, r.traceID)
	}
	return nil
}

func promScalar(prom, q string) (float64, error) {
	var out struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON("http://"+prom+"/api/v1/query?query="+url.QueryEscape(q), &out); err != nil {
		return 0, err
	}
	if len(out.Data.Result) == 0 {
		return 0, fmt.Errorf("%s: no series", q)
	}
	return strconv.ParseFloat(out.Data.Result[0].Value[1].(string), 64)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}
