package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func randomLogits(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	return l
}

func TestSamplerProperties(t *testing.T) {
	logits := randomLogits(5000, 1)
	best := argmax(logits)
	for _, tc := range []struct {
		name string
		p    SamplingParams
		ok   func(tok int) bool
	}{
		{"greedy picks the argmax", SamplingParams{}, func(tok int) bool { return tok == best }},
		{"top_k 1 is greedy", SamplingParams{Temperature: 1, TopK: 1, TopP: 1, Seed: 3}, func(tok int) bool { return tok == best }},
		{"tiny top_p is greedy", SamplingParams{Temperature: 1, TopP: 1e-6, Seed: 3}, func(tok int) bool { return tok == best }},
		{"min_p near 1 is greedy", SamplingParams{Temperature: 1, TopP: 1, MinP: 0.9999, Seed: 3}, func(tok int) bool { return tok == best }},
		{"top_k 5 stays in the top 5", SamplingParams{Temperature: 5, TopK: 5, TopP: 1, Seed: 9}, func(tok int) bool {
			n := 0
			for _, l := range logits {
				if l > logits[tok] {
					n++
				}
			}
			return n < 5
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(tc.p)
			for range 50 {
				l := append([]float32(nil), logits...)
				if tok := s.sample(l, nil); !tc.ok(tok) {
					t.Fatalf("token %d (logit %v, best %d %v)", tok, logits[tok], best, logits[best])
				}
			}
		})
	}
}

// top_p 0 and min_p 1 keep only the most probable token, even at a high
// temperature over logits so flat that anything else would be drawn; top_p
// 1 and min_p 0 leave the draw alone.
func TestSamplerEdgesMeanWhatTheySay(t *testing.T) {
	flat := make([]float32, 1000)
	for i := range flat {
		flat[i] = float32(i%97) * 1e-3
	}
	flat[613] = 0.2 // the argmax, about 1.2 times as likely as any other token
	tied := []float32{0.1, 0.3, 0.2, 0.3, 0.1}
	normal := randomLogits(5000, 4)
	for _, row := range []struct {
		name   string
		logits []float32
		best   []int // the tokens that may be drawn when only the most probable stay
	}{
		{"flat", flat, []int{613}},
		{"normal", normal, []int{argmax(normal)}},
		{"tied", tied, []int{1, 3}},
	} {
		for _, tc := range []struct {
			name string
			p    SamplingParams
			best []int
		}{
			{"top_p 0", SamplingParams{Temperature: 1, TopP: 0}, row.best[:1]},
			{"top_p 0, top_k 40", SamplingParams{Temperature: 1, TopP: 0, TopK: 40}, row.best[:1]},
			{"top_p 0, temperature 2", SamplingParams{Temperature: 2, TopP: 0}, row.best[:1]},
			{"min_p 1", SamplingParams{Temperature: 1, TopP: 1, MinP: 1}, row.best},
			{"min_p 1, top_k 40", SamplingParams{Temperature: 1, TopP: 1, MinP: 1, TopK: 40}, row.best},
			{"min_p 1, temperature 2", SamplingParams{Temperature: 2, TopP: 1, MinP: 1}, row.best},
		} {
			seen := map[int]int{}
			for seed := range uint64(20) {
				tc.p.Seed = seed
				s := newSampler(tc.p)
				for draw := range 10 {
					tok := s.sample(append([]float32(nil), row.logits...), nil)
					if !slices.Contains(tc.best, tok) {
						t.Fatalf("%s, %s logits, seed %d, draw %d: token %d, want one of %v", tc.name, row.name, seed, draw, tok, tc.best)
					}
					seen[tok]++
				}
			}
			if len(tc.best) > 1 && len(seen) < 2 {
				t.Errorf("%s, %s logits: only %v drawn among the tied %v", tc.name, row.name, seen, tc.best)
			}
		}
	}
	// the other ends stay off: the flat row's draws spread over many tokens
	for _, p := range []SamplingParams{{Temperature: 1, TopP: 1}, {Temperature: 1, TopP: 1, MinP: 0}} {
		seen := map[int]bool{}
		for seed := range uint64(200) {
			p.Seed = seed
			seen[newSampler(p).sample(append([]float32(nil), flat...), nil)] = true
		}
		if len(seen) < 100 {
			t.Errorf("%+v: %d distinct tokens in 200 draws from near-uniform logits", p, len(seen))
		}
	}
}

func TestRepeatPenaltyAvoidsRecentToken(t *testing.T) {
	logits := []float32{1, 5, 4.5, 0}
	s := newSampler(SamplingParams{RepeatPenalty: 2, RepeatLastN: 64})
	if tok := s.sample(append([]float32(nil), logits...), []int{1, 1, 3}); tok != 2 {
		t.Errorf("penalised token 1 still chosen: got %d", tok)
	}
}

func TestSamplingDoesNotAllocate(t *testing.T) {
	logits := randomLogits(151936, 2)
	for _, p := range []SamplingParams{{}, {Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, RepeatLastN: 64, Seed: 1}} {
		s := newSampler(p)
		recent := make([]int, 64)
		s.sample(logits, recent) // grow the buffers once
		if n := testing.AllocsPerRun(20, func() { s.sample(logits, recent) }); n != 0 {
			t.Errorf("%+v: %v allocations per token", p, n)
		}
	}
}

// go test -bench Sample -benchmem ./engine
func BenchmarkSample(b *testing.B) {
	logits := randomLogits(151936, 3)
	for _, bc := range []struct {
		name string
		p    SamplingParams
	}{
		{"greedy", SamplingParams{}},
		{"topk40", SamplingParams{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: 1}},
		{"topk40_penalty", SamplingParams{Temperature: 0.8, TopK: 40, TopP: 0.95, RepeatPenalty: 1.1, RepeatLastN: 64, Seed: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSampler(bc.p)
			recent := make([]int, 64)
			b.ReportAllocs()
			for b.Loop() {
				s.sample(logits, recent)
			}
		})
	}
}

func TestArgmaxMatchesPlainScan(t *testing.T) {
	plain := func(l []float32) int {
		b := 0
		for i, v := range l {
			if v > l[b] {
				b = i
			}
		}
		return b
	}
	for n := 1; n < 40; n++ {
		for seed := range uint64(20) {
			l := randomLogits(n, seed)
			if seed%3 == 0 { // ties
				for i := range l {
					l[i] = float32(int(l[i]))
				}
			}
			if got, want := argmax(l), plain(l); got != want {
				t.Fatalf("n=%d seed=%d: argmax %d, plain scan %d (%v)", n, seed, got, want, l)
			}
		}
	}
}

func TestSamplePoolCoversEverySlotOnceWithoutAllocating(t *testing.T) {
	for _, workers := range []int{0, 1, 3} {
		calls := make([]int, 8)
		p := newSamplePool(workers, func(s *slot) { calls[s.id]++ })
		ss := make([]*slot, len(calls))
		for i := range ss {
			ss[i] = &slot{id: i}
		}
		for n := range len(ss) + 1 {
			clear(calls)
			p.run(ss[:n])
			for i, c := range calls {
				if want := b2i(i < n); c != want {
					t.Fatalf("workers %d, %d slots: slot %d sampled %d times", workers, n, i, c)
				}
			}
		}
		if a := testing.AllocsPerRun(100, func() { p.run(ss) }); a != 0 {
			t.Errorf("workers %d: run allocates %.0f times", workers, a)
		}
		p.close()
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
