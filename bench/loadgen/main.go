// Command loadgen drives qwend (OpenAI /v1/completions) or Ollama
// (/api/generate) with the same prompts, concurrency, max tokens and greedy
// settings, and reports throughput and latency; prefill measures a
// stream's inter-token gaps while a long prompt prefills beside it (qwend).
//
//	loadgen run --api openai|ollama --url URL --model M --label L --concurrency 1,4 --out results.json
//	loadgen report --qwend on.json --ollama ollama.json --qwend-off off.json
//	loadgen prefill --url URL --model M --prompt-tokens 20000 --label L --out prefill.json
//	loadgen prefill-report --in prefill.json
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen run|report|prefill|prefill-report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:], os.Stdout)
	case "prefill":
		err = prefillCmd(os.Args[2:])
	case "prefill-report":
		err = prefillReportCmd(os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// Result is one concurrency level's measurements.
type Result struct {
	Label       string `json:"label"`
	API         string `json:"api"`
	Concurrency int    `json:"concurrency"`
	Requests    int    `json:"requests"`
	Errors      int    `json:"errors"`
	FirstError  string `json:"first_error,omitempty"`
	// CPUSeconds is the user and system CPU time the daemon's process
	// (--pid) used during the level; 0 when not measured.
	CPUSeconds    float64 `json:"cpu_seconds,omitempty"`
	OutputTokens  int     `json:"output_tokens"`
	WallSeconds   float64 `json:"wall_seconds"`
	AggregateTokS float64 `json:"aggregate_tok_s"`
	PerStreamTokS float64 `json:"per_stream_tok_s"`
	TTFTP50MS     float64 `json:"ttft_p50_ms"`
	TTFTP95MS     float64 `json:"ttft_p95_ms"`
	EndToEndP50MS float64 `json:"e2e_p50_ms"`
	EndToEndP95MS float64 `json:"e2e_p95_ms"`
	MaxTokens     int     `json:"max_tokens"`
	RequestsEach  int     `json:"requests_per_stream"`
	MeasuredAt    string  `json:"measured_at"`
}

type sample struct {
	ttft, e2e time.Duration
	tokens    int
	err       error
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	api := fs.String("api", "openai", "openai (qwend) or ollama")
	url := fs.String("url", "http://127.0.0.1:8080", "daemon base URL")
	model := fs.String("model", "", "model name sent in requests")
	label := fs.String("label", "", "name of this run in the report")
	conc := fs.String("concurrency", "1,4", "comma-separated concurrent streams")
	each := fs.Int("requests", 4, "requests per stream per concurrency level")
	maxTokens := fs.Int("max-tokens", 64, "tokens generated per request")
	threads := fs.Int("num-thread", 0, "ollama only: options.num_thread (0: its default)")
	numCtx := fs.Int("num-ctx", 0, "ollama only: options.num_ctx (0: its default)")
	repeat := fs.Float64("repeat-penalty", 2.0, "repeat penalty for both daemons: the synthetic model's greedy output otherwise falls into one-token loops, which Ollama aborts after 30 repeats")
	out := fs.String("out", "", "append results as JSON lines to this file")
	pid := fs.Int("pid", 0, "the daemon's process id: report the CPU time it used (Linux)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *api != "openai" && *api != "ollama" {
		return fmt.Errorf("--api %q: want openai or ollama", *api)
	}
	var levels []int
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--concurrency %q: %v", *conc, s)
		}
		levels = append(levels, n)
	}
	c := client{api: *api, url: strings.TrimRight(*url, "/"), model: *model, maxTokens: *maxTokens, threads: *threads, numCtx: *numCtx, repeat: *repeat}
	// warm up: load, first allocations
	if s := c.do(context.Background(), prompt(0, 0)); s.err != nil {
		return fmt.Errorf("warm-up request: %w", s.err)
	}
	var w io.Writer = io.Discard
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	for _, n := range levels {
		cpu0, cpuErr := processCPU(*pid)
		r := c.level(n, *each)
		if cpu1, err := processCPU(*pid); *pid > 0 && cpuErr == nil && err == nil {
			r.CPUSeconds = cpu1 - cpu0
		}
		r.Label, r.API, r.MaxTokens, r.RequestsEach = *label, *api, *maxTokens, *each
		r.MeasuredAt = time.Now().UTC().Format(time.RFC3339)
		b, _ := json.Marshal(r)
		fmt.Fprintf(os.Stderr, "%s c=%d: %.1f tok/s aggregate, %.1f tok/s per stream, ttft p50 %.1f ms, e2e p50 %.1f ms, %d errors\n",
			r.Label, n, r.AggregateTokS, r.PerStreamTokS, r.TTFTP50MS, r.EndToEndP50MS, r.Errors)
		if r.FirstError != "" {
			fmt.Fprintf(os.Stderr, "%s c=%d: first error: %s\n", r.Label, n, r.FirstError)
		}
		fmt.Fprintln(w, string(b))
	}
	return nil
}

// prompt is about 40 tokens of code, distinct per stream and request so
// neither daemon serves it from a prefix cache.
func prompt(stream, i int) string {
	return fmt.Sprintf("// request %d of stream %d\n", i, stream) +
		"package main\n\nimport \"fmt\"\n\n// fib returns the n-th Fibonacci number.\nfunc fib(n int) int {\n\tif n < 2 {\n\t\treturn n\n\t}\n"
}

type client struct {
	api, url, model string
	maxTokens       int
	threads, numCtx int
	repeat          float64
}

func (c client) level(n, each int) Result {
	var mu sync.Mutex
	var samples []sample
	start := time.Now()
	var wg sync.WaitGroup
	for s := range n {
		wg.Go(func() {
			for i := range each {
				sm := c.do(context.Background(), prompt(s+1, i))
				mu.Lock()
				samples = append(samples, sm)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	r := Result{Concurrency: n, Requests: len(samples), WallSeconds: wall.Seconds()}
	var ttft, e2e []float64
	var perStream float64
	for _, s := range samples {
		if s.err != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = s.err.Error()
			}
			continue
		}
		r.OutputTokens += s.tokens
		ttft = append(ttft, ms(s.ttft))
		e2e = append(e2e, ms(s.e2e))
		perStream += float64(s.tokens) / s.e2e.Seconds()
	}
	if ok := len(e2e); ok > 0 {
		r.PerStreamTokS = perStream / float64(ok)
	}
	r.AggregateTokS = float64(r.OutputTokens) / wall.Seconds()
	r.TTFTP50MS, r.TTFTP95MS = quantile(ttft, 0.5), quantile(ttft, 0.95)
	r.EndToEndP50MS, r.EndToEndP95MS = quantile(e2e, 0.5), quantile(e2e, 0.95)
	return r
}

// processCPU reads the user and system CPU seconds of a process from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
func processCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// the command name, in parentheses, may hold spaces: count fields after it
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times %q %q", pid, f[11], f[12])
	}
	return (utime + stime) / 100, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// quantile by the nearest-rank method on a small sample.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// do sends one streaming greedy request and times its first token and end.
func (c client) do(ctx context.Context, p string) sample {
	var body any
	path := "/v1/completions"
	if c.api == "ollama" {
		path = "/api/generate"
		opts := map[string]any{"num_predict": c.maxTokens, "temperature": 0, "top_k": 40, "repeat_penalty": c.repeat, "repeat_last_n": 64}
		if c.threads > 0 {
			opts["num_thread"] = c.threads
		}
		if c.numCtx > 0 {
			opts["num_ctx"] = c.numCtx
		}
		body = map[string]any{"model": c.model, "prompt": p, "raw": true, "stream": true, "options": opts}
	} else {
		body = map[string]any{"model": c.model, "prompt": p, "max_tokens": c.maxTokens, "temperature": 0,
			"top_k": 40, "repeat_penalty": c.repeat, "stream": true, "stream_options": map[string]bool{"include_usage": true}}
	}
	start := time.Now()
	resp, err := post(ctx, c.url+path, body)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	var s sample
	var last []byte
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := bytes.TrimPrefix(bytes.TrimSpace(sc.Bytes()), []byte("data: "))
		if len(line) == 0 || string(line) == "[DONE]" {
			continue
		}
		last = append(last[:0], line...)
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Response  string          `json:"response"`
			Done      bool            `json:"done"`
			EvalCount int             `json:"eval_count"`
			Error     json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return sample{err: fmt.Errorf("event %q: %w", line, err)}
		}
		if len(ev.Error) > 0 {
			return sample{err: fmt.Errorf("in-band error %s", ev.Error)}
		}
		if s.ttft == 0 && (len(ev.Choices) > 0 || ev.Response != "" || ev.Done) {
			s.ttft = time.Since(start)
		}
		if ev.Usage != nil {
			s.tokens = ev.Usage.CompletionTokens
		}
		if ev.Done {
			s.tokens = ev.EvalCount
		}
	}
	s.e2e = time.Since(start)
	if err := sc.Err(); err != nil {
		return sample{err: err}
	}
	if s.tokens == 0 {
		return sample{err: fmt.Errorf("no token count in the response; last event %s", last)}
	}
	return s
}
