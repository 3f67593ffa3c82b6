package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuantileNearestRank(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	for q, want := range map[float64]float64{0.5: 3, 0.95: 5, 0.2: 1, 1: 5} {
		if got := quantile(v, q); got != want {
			t.Errorf("q%.2f = %v, want %v", q, got, want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("empty sample")
	}
}

func TestReportRatioLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rs ...Result) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, r := range rs {
			b, _ := json.Marshal(r)
			f.Write(append(b, '\n'))
		}
		return p
	}
	on := write("on", Result{Label: "q", Concurrency: 1, AggregateTokS: 600}, Result{Label: "q", Concurrency: 32, AggregateTokS: 2000})
	off := write("off", Result{Label: "q off", Concurrency: 1, AggregateTokS: 610}, Result{Label: "q off", Concurrency: 32, AggregateTokS: 2040})
	oll := write("oll", Result{Label: "o", Concurrency: 1, AggregateTokS: 300}, Result{Label: "o", Concurrency: 32, AggregateTokS: 400})
	var out strings.Builder
	if err := reportCmd([]string{"--qwend", on, "--qwend-off", off, "--ollama", oll}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := "qwend/ollama: 2.00 at 1 stream, 5.00 at 32 streams; telemetry on/off: 0.981"
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
}

// Each level stands for its median run over the rounds: one slow or fast
// outlier moves neither the table nor the ratios.
func TestReportTakesTheMedianRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rs ...Result) string {
		p := filepath.Join(dir, name)
		var b strings.Builder
		for _, r := range rs {
			j, _ := json.Marshal(r)
			b.Write(append(j, '\n'))
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	on := write("on", Result{Label: "q", Concurrency: 4, AggregateTokS: 900}, Result{Label: "q", Concurrency: 4, AggregateTokS: 300},
		Result{Label: "q", Concurrency: 4, AggregateTokS: 600})
	off := write("off", Result{Label: "q off", Concurrency: 4, AggregateTokS: 500}, Result{Label: "q off", Concurrency: 4, AggregateTokS: 1000},
		Result{Label: "q off", Concurrency: 4, AggregateTokS: 50})
	oll := write("oll", Result{Label: "o", Concurrency: 4, AggregateTokS: 200})
	var out strings.Builder
	if err := reportCmd([]string{"--qwend", on, "--qwend-off", off, "--ollama", oll}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| q | 4 | 600.0 | 3: 300.0-900.0 |") {
		t.Errorf("median row missing:\n%s", out.String())
	}
	if want := "qwend/ollama: 3.00 at 4 stream, 3.00 at 4 streams; telemetry on/off: 1.200"; !strings.HasSuffix(strings.TrimSpace(out.String()), want) {
		t.Errorf("want last line %q in\n%s", want, out.String())
	}
}

func TestProcessCPUGrowsWithWork(t *testing.T) {
	start, err := processCPU(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		now, err := processCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now > start {
			return
		}
	}
	t.Errorf("CPU time stayed at %v s over 10 s of work (%d)", start, x)
}

func TestReportCPUPerThousandTokens(t *testing.T) {
	l := level{all: []Result{{CPUSeconds: 2, OutputTokens: 1000}, {CPUSeconds: 1, OutputTokens: 1000}, {CPUSeconds: 9, OutputTokens: 1000}}}
	if got := cpuPerKTok(l); got != "2000" {
		t.Errorf("median CPU per 1k tokens %s, want 2000", got)
	}
	if got := cpuPerKTok(level{all: []Result{{OutputTokens: 5}}}); got != "-" {
		t.Errorf("unmeasured: %s", got)
	}
}
