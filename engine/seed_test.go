package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qwend/qwend/synth"
)

// What a seed reproduces. The sampler draws from the logits it is given,
// its seed and the sequence's own tokens, nothing else: sampling the same
// rows with the same seed gives the same tokens whether the sequence is
// sampled alone or among others on the sampling workers.
func TestSeededSamplerDependsOnlyOnItsLogits(t *testing.T) {
	const steps = 64
	rows := make([][]float32, steps)
	for i := range rows {
		rows[i] = randomLogits(5000, uint64(100+i))
	}
	p := SamplingParams{Temperature: 1, TopP: 1, RepeatPenalty: 1.1, RepeatLastN: 64, Seed: 1234}
	draw := func(s *slot, step int) {
		s.logits = append(s.logits[:0], rows[step]...)
		s.next = s.sampler.sample(s.logits, s.tokens)
		s.tokens = append(s.tokens, s.next)
	}
	alone := &slot{sampler: newSampler(p)}
	for i := range steps {
		draw(alone, i)
	}
	// the same sequence in slot 2 of 4, sampled on 3 workers with three
	// others that have their own seeds and logits
	for _, workers := range []int{0, 3} {
		ss := make([]*slot, 4)
		for i := range ss {
			q := p
			if i != 2 {
				q.Seed = uint64(i)
			}
			ss[i] = &slot{id: i, sampler: newSampler(q)}
		}
		step := 0
		pool := newSamplePool(workers, func(s *slot) {
			if s.id == 2 {
				draw(s, step)
				return
			}
			s.logits = randomLogits(5000, uint64(step*10+s.id))
			s.next = s.sampler.sample(s.logits, nil)
		})
		for step = range steps {
			pool.run(ss)
		}
		pool.close()
		if !slices.Equal(ss[2].tokens, alone.tokens) {
			t.Errorf("%d workers: among others %v, alone %v", workers, ss[2].tokens, alone.tokens)
		}
	}
}

// Where seeded output changes with what else runs: llama.cpp's arithmetic.
// A sequence decoded in a batch with other sequences gets logits that
// differ from its logits decoded alone in the last bits (ggml's kernels
// sum in other orders for other batch shapes),
// and a sampled token flips where the draw falls near a boundary; from
// there the texts part. The test steps the scheduler by hand, records
// every logits row the sequence was sampled from, and shows that replaying
// the sampler on those rows gives the tokens of each run, so that a run
// whose tokens differ had different logits at or before the first
// difference. Alone, the same request repeats exactly.
func TestSeedReproducesOnlyTheSameBatches(t *testing.T) {
	e := newEngine(t, Config{Parallel: 3})
	e.stop() // take the context over from the scheduler
	<-e.done
	prompt := func(s string) []int {
		p, err := e.Tokenize(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	target := prompt("Invent a word")
	others := [][]int{prompt("def quicksort(items):"), prompt("The quick brown fox jumps")}
	type run struct {
		tokens []int
		rows   [][]float32
	}
	generate := func(sp SamplingParams, withOthers bool) run {
		var r run
		slots := e.newSlots()
		e.pool.close()
		seq := func(p []int, sp SamplingParams) *sequence {
			return &sequence{ctx: context.Background(), req: &Request{Sampling: sp}, prompt: p, maxOut: 40,
				out: make(chan output, 41), done: make(chan struct{})}
		}
		q := seq(target, sp)
		pending := []*sequence{q}
		if withOthers {
			for i, p := range others {
				pending = append(pending, seq(p, SamplingParams{Temperature: 1, TopP: 1, Seed: uint64(i)}))
			}
		}
		e.pool = newSamplePool(0, func(s *slot) {
			if s.seq == q {
				r.rows = append(r.rows, slices.Clone(s.logits))
			}
			s.next = s.sampler.sample(s.logits, s.tokens)
			if s.seq == q {
				r.tokens = append(r.tokens, s.next)
			}
		})
		defer e.pool.close()
		e.admit(slots, pending)
		for slots[0].seq == q {
			e.step(slots)
		}
		for _, s := range slots {
			for s.seq != nil { // the others run to their end too
				e.step(slots)
			}
		}
		return r
	}
	// replay draws the tokens of a run from its recorded rows alone
	replay := func(sp SamplingParams, r run) []int {
		s := newSampler(sp)
		hist := slices.Clone(target)
		var out []int
		for _, row := range r.rows {
			tok := s.sample(slices.Clone(row), hist)
			out = append(out, tok)
			hist = append(hist, tok)
		}
		return out
	}
	parted := 0
	for seed := range uint64(12) {
		sp := SamplingParams{Temperature: 1, TopP: 1, Seed: 1234 + seed} // issue 16's input: temperature 1, top_k 0
		alone, again, among := generate(sp, false), generate(sp, false), generate(sp, true)
		if !slices.Equal(alone.tokens, again.tokens) {
			t.Errorf("seed %d: alone twice gave %v then %v", sp.Seed, alone.tokens, again.tokens)
		}
		for _, r := range []run{alone, among} {
			if got := replay(sp, r); !slices.Equal(got, r.tokens) {
				t.Fatalf("seed %d: the sampler replayed on the recorded logits gave %v, the run %v", sp.Seed, got, r.tokens)
			}
		}
		tokAt := firstDifference(len(alone.tokens), len(among.tokens), func(i int) bool { return alone.tokens[i] == among.tokens[i] })
		if tokAt < 0 {
			continue
		}
		parted++
		rowAt := firstDifference(len(alone.rows), len(among.rows), func(i int) bool { return slices.Equal(alone.rows[i], among.rows[i]) })
		if rowAt < 0 || rowAt > tokAt {
			t.Errorf("seed %d: tokens differ from step %d, but the logits did not differ before it (from %d)", sp.Seed, tokAt, rowAt)
			continue
		}
		t.Logf("seed %d: tokens part at step %d; logits first differ at step %d, by %s", sp.Seed, tokAt, rowAt, maxDiff(alone.rows[rowAt], among.rows[rowAt]))
	}
	t.Logf("%d of 12 seeds gave other tokens among other sequences than alone", parted)
}

// firstDifference is the first index below min(a, b) where same is false,
// else min(a, b) when a != b, else -1.
func firstDifference(a, b int, same func(int) bool) int {
	for i := range min(a, b) {
		if !same(i) {
			return i
		}
	}
	if a != b {
		return min(a, b)
	}
	return -1
}

func maxDiff(a, b []float32) string {
	var m float64
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
			m = math.Max(m, math.Abs(float64(a[i]-b[i])))
		}
	}
	return fmt.Sprintf("at most %.3g in %d of %d logits", m, n, len(a))
}

// The fingerprint is stable for one model file, build and settings, and
// changes with the file and with each setting that changes results.
func TestFingerprint(t *testing.T) {
	fp := func(cfg Config) string {
		e := newEngine(t, cfg)
		defer e.Close()
		return e.Info().Fingerprint
	}
	base := fp(Config{Parallel: 2})
	if !regexp.MustCompile(`^fp_[0-9a-f]{10}$`).MatchString(base) {
		t.Fatalf("fingerprint %q, want fp_ and 10 hex digits", base)
	}
	if again := fp(Config{Parallel: 2, Threads: 2}); again != base {
		t.Errorf("same model and settings (other threads): %s, then %s", base, again)
	}
	seen := map[string]string{base: "base"}
	for name, cfg := range map[string]Config{
		"parallel":        {Parallel: 3},
		"context":         {Parallel: 2, ContextPerSlot: 256},
		"batch size":      {Parallel: 2, BatchSize: 64},
		"flash attention": {Parallel: 2, FlashAttention: "on"},
		"kv cache type":   {Parallel: 2, FlashAttention: "on", KVCacheType: "q8_0"}, // a quantized V cache needs it
	} {
		f := fp(cfg)
		if prev, ok := seen[f]; ok {
			t.Errorf("%s: fingerprint %s, the same as %s", name, f, prev)
		}
		seen[f] = name
	}
	other := filepath.Join(t.TempDir(), "other.gguf")
	if err := synth.WriteTiny(context.Background(), other, 2); err != nil {
		t.Fatal(err)
	}
	saved := modelPath
	modelPath = other
	f := fp(Config{Parallel: 2})
	modelPath = saved
	if f == base {
		t.Errorf("another model file (another seed): fingerprint %s unchanged", f)
	}
	if b := LlamaBuild(); !regexp.MustCompile(`^ollama v\S+, llama\.cpp [0-9a-f]{7,}$`).MatchString(b) {
		t.Errorf("llama build %q", b)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "\tgithub.com/ollama/ollama "+BindingVersion+"\n") {
		t.Errorf("go.mod does not pin github.com/ollama/ollama %s (BindingVersion)", BindingVersion)
	}
}
