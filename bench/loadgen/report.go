package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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

func byConcurrency(rs []Result) map[int]Result {
	m := map[int]Result{}
	for _, r := range rs {
		m[r.Concurrency] = r
	}
	return m
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
	fmt.Fprintf(w, "| daemon | streams | aggregate tok/s | per-stream tok/s | TTFT p50 ms | TTFT p95 ms | e2e p50 ms | e2e p95 ms | errors |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, set := range [][]Result{on, off, oll} {
		for _, r := range set {
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d |\n", r.Label, r.Concurrency,
				r.AggregateTokS, r.PerStreamTokS, r.TTFTP50MS, r.TTFTP95MS, r.EndToEndP50MS, r.EndToEndP95MS, r.Errors)
		}
	}
	onBy, ollBy, offBy := byConcurrency(on), byConcurrency(oll), byConcurrency(off)
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
