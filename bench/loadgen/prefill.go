package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// PrefillResult is one measurement of a stream decoding while a long
// prompt prefills beside it: stream A decodes, request B (the long prompt,
// one output token) is sent once A is under way, and A is cut once B has
// answered and A has gone on a while.
type PrefillResult struct {
	Label string `json:"label"`
	// PromptTokens is B's prompt length in tokens, as the daemon counted
	// it (usage.prompt_tokens).
	PromptTokens int `json:"prompt_tokens"`
	// PrefillSeconds is B's duration, from sending it to reading its
	// whole answer, in seconds.
	PrefillSeconds float64 `json:"prefill_seconds"`
	// GapsDuring is how many of A's inter-token gaps overlap B's
	// duration; GapP50MS, GapP99MS and GapMaxMS are their median, 99th
	// percentile (nearest rank) and longest, in milliseconds.
	GapsDuring int     `json:"gaps_during"`
	GapP50MS   float64 `json:"gap_p50_ms"`
	GapP99MS   float64 `json:"gap_p99_ms"`
	GapMaxMS   float64 `json:"gap_max_ms"`
	// DuringMS is every gap during B in milliseconds, in order.
	DuringMS []float64 `json:"during_ms"`
	// GapsBefore is how many of A's gaps ended before B was sent;
	// BeforeP50MS is their median in milliseconds, the stream's pace with
	// nothing beside it.
	GapsBefore  int     `json:"gaps_before"`
	BeforeP50MS float64 `json:"before_p50_ms"`
	// Events is how many SSE data events carrying text A received in all.
	Events int `json:"events"`
	// PeakRSSMiB is the daemon's (--pid) peak resident memory when A was
	// cut, in MiB (2^20 bytes); 0 when not measured.
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
	MeasuredAt string  `json:"measured_at"`
}

// gapStats turns A's event arrival times and B's start and end into a
// PrefillResult's gap figures. Gap i runs from arrival i-1 to arrival i;
// it is "during" B when it overlaps (bStart, bEnd), and "before" B when it
// ends at or before bStart.
func gapStats(arrivals []time.Time, bStart, bEnd time.Time) PrefillResult {
	var during, before []float64
	for i := 1; i < len(arrivals); i++ {
		from, to := arrivals[i-1], arrivals[i]
		g := ms(to.Sub(from))
		switch {
		case !to.After(bStart):
			before = append(before, g)
		case from.Before(bEnd):
			during = append(during, g)
		}
	}
	r := PrefillResult{GapsDuring: len(during), DuringMS: during, GapsBefore: len(before), Events: len(arrivals)}
	r.GapP50MS, r.GapP99MS, r.GapMaxMS = quantile(during, 0.5), quantile(during, 0.99), quantile(during, 1)
	r.BeforeP50MS = quantile(before, 0.5)
	return r
}

// promptLine is line i of the long prompt: code-like text that varies
// from line to line, so the prompt is not one phrase repeated.
func promptLine(i int) string {
	nouns := []string{"buffer", "request", "slot", "token", "cache", "stream", "batch", "sampler", "context", "ledger", "queue"}
	verbs := []string{"reads", "writes", "drains", "fills", "checks", "frees", "counts", "sorts", "merges", "splits", "holds", "waits on"}
	a, b := nouns[i%len(nouns)], nouns[(i*7+3)%len(nouns)]
	return fmt.Sprintf("// step %d: the %s %s the %s at offset %d (%x).\n", i, a, verbs[(i*5+1)%len(verbs)], b, i*37%1000, i*2654435761%65536)
}

// buildPrompt returns text of close to n tokens by count (the daemon's
// tokenizer), and its count: the most whole lines of promptLine whose
// count is at most n, then single padding words up to n. It asks count
// about 30 times for a prompt of 20,000 tokens.
func buildPrompt(n int, count func(string) (int, error)) (string, int, error) {
	if n < 1 {
		return "", 0, fmt.Errorf("prompt of %d tokens", n)
	}
	var sb strings.Builder
	lines := func(k int) string {
		sb.Reset()
		for i := range k {
			sb.WriteString(promptLine(i))
		}
		return sb.String()
	}
	// largest k with count(lines(k)) <= n: grow hi by doubling, then bisect
	lo, hi := 0, 1
	for {
		c, err := count(lines(hi))
		if err != nil {
			return "", 0, err
		}
		if c > n {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		c, err := count(lines(mid))
		if err != nil {
			return "", 0, err
		}
		if c <= n {
			lo = mid
		} else {
			hi = mid
		}
	}
	base := lines(lo)
	pad := func(w int) string { return base + strings.Repeat(" ok", w) }
	// largest w with count(pad(w)) <= n, searched up to 4 words a token
	c, err := count(base)
	if err != nil {
		return "", 0, err
	}
	lo, hi = 0, 4*(n-c)+1
	best := c
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		cm, err := count(pad(mid))
		if err != nil {
			return "", 0, err
		}
		if cm <= n {
			lo, best = mid, cm
		} else {
			hi = mid
		}
	}
	return pad(lo), best, nil
}

// tokenCount counts text's tokens with the daemon's POST /tokenize.
func tokenCount(ctx context.Context, url string) func(string) (int, error) {
	return func(text string) (int, error) {
		var out struct {
			Tokens []int `json:"tokens"`
		}
		if err := postJSON(ctx, url+"/tokenize", map[string]string{"content": text}, &out); err != nil {
			return 0, fmt.Errorf("/tokenize: %w", err)
		}
		return len(out.Tokens), nil
	}
}

// post posts v as JSON to url and returns the 200 response, whose body
// the caller closes; another status is an error with the body.
func post(ctx context.Context, url string, v any) (*http.Response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	return resp, nil
}

// postJSON posts v as JSON to url and decodes the 200 answer into out.
func postJSON(ctx context.Context, url string, v, out any) error {
	resp, err := post(ctx, url, v)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("answer %q: %w", body, err)
	}
	return nil
}

func prefillCmd(args []string) error {
	fs := flag.NewFlagSet("prefill", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "daemon base URL")
	model := fs.String("model", "", "model name sent in requests")
	tokens := fs.Int("prompt-tokens", 20000, "the long prompt's length in tokens (B)")
	around := fs.Int("around", 20, "tokens stream A decodes before B is sent, and after B has answered")
	label := fs.String("label", "", "name of this run in the report")
	out := fs.String("out", "", "append the result as a JSON line to this file")
	wait := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	pid := fs.Int("pid", 0, "the daemon's process id: report its peak resident memory (Linux)")
	ban := fs.String("ban-tokens", "", "token ids and ranges (151643-151935,7) stream A never samples (logit_bias -100): "+
		"the end tokens, so that a random model's stream runs until it is cut, and tokens without text, so that every token is an event")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bias, err := banBias(*ban)
	if err != nil {
		return fmt.Errorf("--ban-tokens: %w", err)
	}
	base := strings.TrimRight(*url, "/")
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()

	t0 := time.Now()
	long, n, err := buildPrompt(*tokens, tokenCount(ctx, base))
	if err != nil {
		return fmt.Errorf("building the prompt: %w", err)
	}
	fmt.Fprintf(os.Stderr, "%s: prompt of %d tokens (%d bytes) built in %s\n", *label, n, len(long), time.Since(t0).Round(time.Millisecond))
	// warm up: first allocations, on a short prompt
	if _, err := complete(ctx, base, *model, prompt(0, 0)); err != nil {
		return fmt.Errorf("warm-up request: %w", err)
	}

	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	// A's event times; closed when A ends, aErr then says why
	ticks := make(chan time.Time, 1<<16)
	var aErr error
	go func() {
		aErr = streamArrivals(actx, base, *model, prompt(1, 0), bias, ticks)
		close(ticks)
	}()
	var arrivals []time.Time
	ended := func(when string) error {
		for range ticks {
		}
		return fmt.Errorf("stream A ended after %d events, %s: %v", len(arrivals), when, aErr)
	}
	for len(arrivals) < *around {
		t, ok := <-ticks
		if !ok {
			return ended("before B")
		}
		arrivals = append(arrivals, t)
	}

	type answer struct {
		promptTokens int
		err          error
	}
	bDone := make(chan answer, 1)
	bStart := time.Now()
	go func() {
		pt, err := complete(ctx, base, *model, long)
		bDone <- answer{pt, err}
	}()
	var b answer
	var bEnd time.Time
	for bEnd.IsZero() {
		select {
		case t, ok := <-ticks:
			if !ok {
				return ended("during B")
			}
			arrivals = append(arrivals, t)
		case b = <-bDone:
			bEnd = time.Now()
		}
	}
	if b.err != nil {
		return fmt.Errorf("request B: %w", b.err)
	}
	for after := 0; after < *around; {
		t, ok := <-ticks
		if !ok {
			return ended("after B")
		}
		arrivals = append(arrivals, t)
		if t.After(bEnd) {
			after++
		}
	}
	stopA()
	for range ticks {
	}

	r := gapStats(arrivals, bStart, bEnd)
	r.Label, r.PromptTokens = *label, b.promptTokens
	r.PrefillSeconds = bEnd.Sub(bStart).Seconds()
	r.MeasuredAt = time.Now().UTC().Format(time.RFC3339)
	if *pid > 0 {
		hwm, err := peakRSS(*pid)
		if err != nil {
			return err
		}
		r.PeakRSSMiB = float64(hwm) / (1 << 20)
	}
	fmt.Fprintf(os.Stderr, "%s: B (%d prompt tokens) took %.2f s; A's %d gaps during it: p50 %.1f ms, p99 %.1f ms, max %.1f ms; median gap before %.1f ms\n",
		r.Label, r.PromptTokens, r.PrefillSeconds, r.GapsDuring, r.GapP50MS, r.GapP99MS, r.GapMaxMS, r.BeforeP50MS)
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		j, _ := json.Marshal(r)
		if _, err := fmt.Fprintln(f, string(j)); err != nil {
			return err
		}
	}
	return nil
}

// peakRSS reads a process's peak resident memory in bytes (VmHWM in
// /proc/<pid>/status).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmHWM %q: %w", pid, strings.TrimSpace(rest), err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// complete sends one greedy, unstreamed completion of one token and
// returns the prompt's length in tokens from its usage.
func complete(ctx context.Context, url, model, p string) (int, error) {
	var out struct {
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	err := postJSON(ctx, url+"/v1/completions", map[string]any{"model": model, "prompt": p, "max_tokens": 1, "temperature": 0}, &out)
	return out.Usage.PromptTokens, err
}

// banBias parses --ban-tokens (comma-separated ids and ranges lo-hi,
// inclusive) into a logit_bias of -100 for each id.
func banBias(s string) (map[string]float32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	bias := map[string]float32{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a token id", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a range of token ids", part)
			}
		}
		for t := a; t <= b; t++ {
			bias[strconv.Itoa(t)] = -100
		}
	}
	return bias, nil
}

// streamArrivals streams a greedy completion up to the context's end and
// sends the arrival time of every SSE data event that carries text on
// ticks, until the stream ends or ctx is cancelled (then it returns nil).
func streamArrivals(ctx context.Context, url, model, p string, bias map[string]float32, ticks chan<- time.Time) error {
	// repeat_penalty as in run: the random model's greedy output otherwise
	// loops on one token
	body := map[string]any{"model": model, "prompt": p, "max_tokens": -1, "temperature": 0,
		"top_k": 40, "repeat_penalty": 2.0, "stream": true}
	if len(bias) > 0 {
		body["logit_bias"] = bias
	}
	resp, err := post(ctx, url+"/v1/completions", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		now := time.Now()
		line, ok := bytes.CutPrefix(bytes.TrimSpace(sc.Bytes()), []byte("data: "))
		if !ok || string(line) == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("event %q: %w", line, err)
		}
		if len(ev.Error) > 0 {
			return fmt.Errorf("in-band error %s", ev.Error)
		}
		if len(ev.Choices) > 0 && ev.Choices[0].Text != "" {
			select {
			case ticks <- now:
			case <-ctx.Done():
				return nil
			}
		}
		if len(ev.Choices) > 0 && ev.Choices[0].FinishReason != nil {
			return fmt.Errorf("finished: %s", *ev.Choices[0].FinishReason)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("the stream ended")
}

// prefillReportCmd prints the results of loadgen prefill as a Markdown
// table, one row per result, then the line
// longest gap during B: <ms> ms <label>, ...
func prefillReportCmd(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("prefill-report", flag.ContinueOnError)
	in := fs.String("in", "", "results of loadgen prefill (JSON lines)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	var rs []PrefillResult
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r PrefillResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", *in, err)
		}
		rs = append(rs, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(rs) == 0 {
		return fmt.Errorf("%s: no results", *in)
	}
	fmt.Fprintln(w, "| mode | prompt tokens | B's prefill s | A's gaps during it | gap p50 ms | gap p99 ms | gap max ms | A's median gap before ms | qwend peak RSS MiB |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rs {
		rss := "-"
		if r.PeakRSSMiB > 0 {
			rss = fmt.Sprintf("%.0f", r.PeakRSSMiB)
		}
		fmt.Fprintf(w, "| %s | %d | %.2f | %d | %.1f | %.1f | %.1f | %.1f | %s |\n",
			r.Label, r.PromptTokens, r.PrefillSeconds, r.GapsDuring, r.GapP50MS, r.GapP99MS, r.GapMaxMS, r.BeforeP50MS, rss)
	}
	var longest []string
	for _, r := range rs {
		longest = append(longest, fmt.Sprintf("%.0f ms %s", r.GapMaxMS, r.Label))
	}
	fmt.Fprintf(w, "\nlongest gap during B: %s\n", strings.Join(longest, ", "))
	return nil
}
