package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// at returns the times base+ms for each ms.
func at(base time.Time, ms ...int) []time.Time {
	out := make([]time.Time, len(ms))
	for i, m := range ms {
		out[i] = base.Add(time.Duration(m) * time.Millisecond)
	}
	return out
}

// Chunked: the stream keeps decoding during B, slower; the gap that
// straddles B's start and the one that straddles its end count as during,
// those wholly before or after do not.
func TestGapStatsChunked(t *testing.T) {
	t0 := time.Unix(1000, 0)
	arr := at(t0, 0, 10, 20, 30, 40, 540, 1040, 1100, 1110, 1120)
	r := gapStats(arr, t0.Add(35*time.Millisecond), t0.Add(1050*time.Millisecond))
	// during: 30-40 (10), 40-540 (500), 540-1040 (500), 1040-1100 (60)
	if r.GapsDuring != 4 || r.GapP50MS != 60 || r.GapP99MS != 500 || r.GapMaxMS != 500 {
		t.Errorf("during: %d gaps, p50 %v, p99 %v, max %v; want 4, 60, 500, 500", r.GapsDuring, r.GapP50MS, r.GapP99MS, r.GapMaxMS)
	}
	if !slices.Equal(r.DuringMS, []float64{10, 500, 500, 60}) {
		t.Errorf("gaps during B %v, want them in order", r.DuringMS)
	}
	if r.GapsBefore != 3 || r.BeforeP50MS != 10 {
		t.Errorf("before: %d gaps, p50 %v; want 3, 10", r.GapsBefore, r.BeforeP50MS)
	}
	if r.Events != len(arr) {
		t.Errorf("events %d, want %d", r.Events, len(arr))
	}
}

// One step: a single stall spans all of B, and it alone is B's gap.
func TestGapStatsOneStep(t *testing.T) {
	t0 := time.Unix(1000, 0)
	arr := at(t0, 0, 10, 20, 5010, 5020, 5030)
	r := gapStats(arr, t0.Add(25*time.Millisecond), t0.Add(5000*time.Millisecond))
	if r.GapsDuring != 1 || r.GapP50MS != 4990 || r.GapP99MS != 4990 || r.GapMaxMS != 4990 {
		t.Errorf("during: %d gaps, p50 %v, p99 %v, max %v; want 1 gap of 4990", r.GapsDuring, r.GapP50MS, r.GapP99MS, r.GapMaxMS)
	}
	if r.GapsBefore != 2 {
		t.Errorf("before: %d gaps, want 2", r.GapsBefore)
	}
}

// A gap ending exactly when B is sent is before it; one starting exactly
// when B has answered is after it.
func TestGapStatsBoundaries(t *testing.T) {
	t0 := time.Unix(1000, 0)
	arr := at(t0, 0, 100, 300, 600)
	r := gapStats(arr, t0.Add(100*time.Millisecond), t0.Add(300*time.Millisecond))
	if r.GapsBefore != 1 || r.GapsDuring != 1 || r.GapMaxMS != 200 {
		t.Errorf("%d before, %d during (max %v); want 1, 1 (200)", r.GapsBefore, r.GapsDuring, r.GapMaxMS)
	}
	if r := gapStats(at(t0, 0), t0, t0); r.GapsDuring != 0 || r.GapP99MS != 0 || r.Events != 1 {
		t.Errorf("one event: %+v", r)
	}
}

// words counts whitespace-separated words: a tokenizer where every word,
// " ok" included, is one token.
func words(calls *int) func(string) (int, error) {
	return func(s string) (int, error) {
		*calls++
		return len(strings.Fields(s)), nil
	}
}

func TestBuildPromptHitsTheCount(t *testing.T) {
	for _, n := range []int{1, 3, 50, 20000} {
		calls := 0
		text, c, err := buildPrompt(n, words(&calls))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(strings.Fields(text)); c != n || got != n {
			t.Errorf("n=%d: reported %d, text has %d", n, c, got)
		}
		if calls > 60 {
			t.Errorf("n=%d: %d calls to count", n, calls)
		}
	}
	// a coarser tokenizer (a token per 4 bytes, rounded up): at most n,
	// within a token of it
	text, c, err := buildPrompt(20000, func(s string) (int, error) { return (len(s) + 3) / 4, nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(text) + 3) / 4; c != want || c > 20000 || c < 19999 {
		t.Errorf("reported %d, text has %d, want 19999-20000", c, want)
	}
}

// The prompt is varied text, not one line repeated.
func TestBuildPromptVaries(t *testing.T) {
	calls := 0
	text, _, err := buildPrompt(5000, words(&calls))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for _, l := range lines[:len(lines)-1] { // the last carries the padding
		if seen[l] {
			t.Fatalf("line %q repeats", l)
		}
		seen[l] = true
	}
	if len(seen) < 300 {
		t.Errorf("%d lines", len(seen))
	}
}

func TestBuildPromptPassesErrorsOn(t *testing.T) {
	boom := errors.New("tokenize: 503")
	calls := 0
	_, _, err := buildPrompt(100, func(string) (int, error) {
		calls++
		if calls == 3 {
			return 0, boom
		}
		return calls, nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want %v", err, boom)
	}
}

func TestPrefillReportTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "prefill.json")
	var b strings.Builder
	for _, r := range []PrefillResult{
		{Label: "chunked (--batch-size 512)", PromptTokens: 19998, PrefillSeconds: 41.234, GapsDuring: 40, GapP50MS: 900.04, GapP99MS: 1500.06, GapMaxMS: 1500.06, BeforeP50MS: 3.21, PeakRSSMiB: 310.6},
		{Label: "one step", PromptTokens: 19998, PrefillSeconds: 39.5, GapsDuring: 1, GapP50MS: 39400, GapP99MS: 39400, GapMaxMS: 39400, BeforeP50MS: 3.3},
	} {
		j, _ := json.Marshal(r)
		b.Write(append(j, '\n'))
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := prefillReportCmd([]string{"--in", p}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"| chunked (--batch-size 512) | 19998 | 41.23 | 40 | 900.0 | 1500.1 | 1500.1 | 3.2 | 311 |",
		"| one step | 19998 | 39.50 | 1 | 39400.0 | 39400.0 | 39400.0 | 3.3 | - |",
	}
	if len(lines) != 6 || lines[2] != want[0] || lines[3] != want[1] {
		t.Errorf("table:\n%s\nwant rows\n%s", out.String(), strings.Join(want, "\n"))
	}
	if last, want := lines[len(lines)-1], "longest gap during B: 1500 ms chunked (--batch-size 512), 39400 ms one step"; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prefillReportCmd([]string{"--in", p}, &out); err == nil {
		t.Error("no error for an empty results file")
	}
}

func TestPeakRSS(t *testing.T) {
	before, err := peakRSS(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if before < 1<<20 {
		t.Errorf("peak RSS %d bytes", before)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, err := peakRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before+32<<20 {
		t.Errorf("peak RSS %d then %d bytes, after touching 64 MiB", before, after)
	}
	if buf[len(buf)-1] != byte(len(buf)-1) {
		t.Fatal("buffer")
	}
	if _, err := peakRSS(-1); err == nil {
		t.Error("no error for pid -1")
	}
}

func TestBanBias(t *testing.T) {
	b, err := banBias("151643-151645, 7")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4 || b["151643"] != -100 || b["151644"] != -100 || b["151645"] != -100 || b["7"] != -100 {
		t.Errorf("bias %v", b)
	}
	if b, err := banBias(""); b != nil || err != nil {
		t.Errorf("empty: %v, %v", b, err)
	}
	for _, bad := range []string{"x", "5-3", "-1", "3-", "1,,2"} {
		if _, err := banBias(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
