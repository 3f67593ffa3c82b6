package engine

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// go test -run xxx -bench DecodeBesidePrefill ./engine
//
// A stream decodes while a long prompt (about 3,000 tokens) prefills in
// the same steps; reported: the stream's inter-token gap, median, p99 and
// the longest,
// with the prompt taken in chunks of --batch-size (512) tokens per step and
// in one step (a batch as large as the prompt). Chunking keeps the stream's
// gaps short while the long prompt goes in.
func BenchmarkDecodeBesidePrefill(b *testing.B) {
	long := strings.Repeat("lorem ipsum dolor ", 300)
	for _, c := range []struct {
		name  string
		batch int
	}{{"chunked=512", 512}, {"one-step", 8192}} {
		b.Run(c.name, func(b *testing.B) {
			e := newEngine(b, Config{Parallel: 2, ContextPerSlot: 8192, BatchSize: c.batch})
			var gaps []float64
			for b.Loop() {
				ctx, cancel := context.WithCancel(context.Background())
				started := make(chan struct{})
				var once sync.Once
				var last time.Time
				var mine []float64
				var wg sync.WaitGroup
				wg.Go(func() {
					req := greedy("stream:", 4000)
					e.Generate(ctx, &req, func(string) {
						now := time.Now()
						if !last.IsZero() {
							mine = append(mine, float64(now.Sub(last).Microseconds())/1000)
						}
						last = now
						once.Do(func() { close(started) })
					})
				})
				<-started
				req := greedy(long, 1)
				if _, err := e.Generate(context.Background(), &req, func(string) {}); err != nil {
					b.Fatal(err)
				}
				cancel()
				wg.Wait()
				gaps = append(gaps, mine...)
			}
			slices.Sort(gaps)
			if len(gaps) > 0 {
				b.ReportMetric(gaps[len(gaps)/2], "gap-p50-ms")
				b.ReportMetric(gaps[len(gaps)*99/100], "gap-p99-ms")
				b.ReportMetric(gaps[len(gaps)-1], "gap-max-ms")
			}
		})
	}
}
