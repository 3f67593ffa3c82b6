package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

func readResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// level is one concurrency level over every run measured at it, sorted by
// aggregate throughput: the median run (the upper one of an even count)
// stands for the level; the others give its spread.
type level struct {
	Result
	all []Result
}

func byConcurrency(rs []Result) map[int]level {
	runs := map[int][]Result{}
	for _, r := range rs {
		runs[r.Concurrency] = append(runs[r.Concurrency], r)
	}
	m := map[int]level{}
	for c, set := range runs {
		slices.SortFunc(set, func(a, b Result) int { return cmp.Compare(a.AggregateTokS, b.AggregateTokS) })
		m[c] = level{Result: set[len(set)/2], all: set}
	}
	return m
}

// cpuPerKTok is the median of the runs' daemon CPU time per 1000 output
// tokens, or "-" when it was not measured.
func cpuPerKTok(l level) string {
	var v []float64
	for _, r := range l.all {
		if r.CPUSeconds > 0 && r.OutputTokens > 0 {
			v = append(v, 1e6*r.CPUSeconds/float64(r.OutputTokens))
		}
	}
	if len(v) == 0 {
		return "-"
	}
	slices.Sort(v)
	return fmt.Sprintf("%.0f", v[len(v)/2])
}

// reportCmd prints the table and the ratio line:
// qwend/ollama: <r1> at 1 stream, <rN> at N streams; telemetry on/off: <rt>
func reportCmd(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	qOn := fs.String("qwend", "", "qwend results, telemetry on")
	ol := fs.String("ollama", "", "ollama results")
	qOff := fs.String("qwend-off", "", "qwend results, telemetry off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	on, err := readResults(*qOn)
	if err != nil {
		return err
	}
	oll, err := readResults(*ol)
	if err != nil {
		return err
	}
	off, err := readResults(*qOff)
	if err != nil {
		return err
	}
	onBy, ollBy, offBy := byConcurrency(on), byConcurrency(oll), byConcurrency(off)
	fmt.Fprintf(w, "| daemon | streams | aggregate tok/s | runs: min-max | per-stream tok/s | TTFT p50 ms | TTFT p95 ms | e2e p50 ms | e2e p95 ms | errors | CPU ms per 1k tokens |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, set := range []map[int]level{onBy, offBy, ollBy} {
		for _, c := range slices.Sorted(maps.Keys(set)) {
			r := set[c]
			fmt.Fprintf(w, "| %s | %d | %.1f | %d: %.1f-%.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %s |\n", r.Label, r.Concurrency,
				r.AggregateTokS, len(r.all), r.all[0].AggregateTokS, r.all[len(r.all)-1].AggregateTokS, r.PerStreamTokS, r.TTFTP50MS, r.TTFTP95MS, r.EndToEndP50MS, r.EndToEndP95MS, r.Errors, cpuPerKTok(r))
		}
	}
	for _, set := range []map[int]level{onBy, offBy, ollBy} {
		for _, c := range slices.Sorted(maps.Keys(set)) {
			if r := set[c]; r.FirstError != "" {
				fmt.Fprintf(w, "\n%s, %d streams: %d of %d requests failed; the first: %s\n", r.Label, c, r.Errors, r.Requests, r.FirstError)
			}
		}
	}
	var levels []int
	for c := range onBy {
		if _, ok := ollBy[c]; ok {
			levels = append(levels, c)
		}
	}
	slices.Sort(levels)
	if len(levels) == 0 {
		return fmt.Errorf("no concurrency level measured for both daemons")
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	lo, hi := levels[0], levels[len(levels)-1]
	r1 := ratio(onBy[lo].AggregateTokS, ollBy[lo].AggregateTokS)
	rN := ratio(onBy[hi].AggregateTokS, ollBy[hi].AggregateTokS)
	// telemetry cost: aggregate throughput on/off over every level measured both ways
	var sumOn, sumOff float64
	for c, r := range offBy {
		if o, ok := onBy[c]; ok {
			sumOn += o.AggregateTokS
			sumOff += r.AggregateTokS
		}
	}
	fmt.Fprintf(w, "\nqwend/ollama: %.2f at %d stream, %.2f at %d streams; telemetry on/off: %.3f\n", r1, lo, rN, hi, ratio(sumOn, sumOff))
	return nil
}
