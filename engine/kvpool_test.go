package engine

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// With a shared KV pool one request may use the whole pool, and requests
// that together need more than the pool all finish: the one admitted last
// is preempted, recomputed and goes on, its greedy answer the same as
// when it ran alone.
func TestKVPoolSharesCells(t *testing.T) {
	e := newEngine(t, Config{Parallel: 2, ContextPerSlot: 512, KVPool: 512, BatchSize: 64})
	if e.Stats().KVCacheCapacity != 512 || e.Info().KVPool != 512 {
		t.Fatalf("stats %+v, info %+v", e.Stats(), e.Info())
	}
	// one request alone uses most of the pool: more than a slot's half
	long := strings.Repeat("the pool is shared ", 30)
	out, res, err := generate(t, e, context.Background(), greedy(long, 40))
	if err != nil || res.PromptTokens+res.OutputTokens <= 256 || out == "" {
		t.Fatalf("one long request: %v, %d+%d tokens", err, res.PromptTokens, res.OutputTokens)
	}

	// two that need 2 x (about 120 + 200) cells together, more than 512
	prompts := []string{strings.Repeat("alpha beta gamma ", 8), strings.Repeat("one two three four ", 7)}
	alone := make([]string, len(prompts))
	for i, p := range prompts {
		fresh := newEngine(t, Config{Parallel: 1, ContextPerSlot: 512, BatchSize: 64})
		var r Result
		if alone[i], r, err = generate(t, fresh, context.Background(), greedy(p, 200)); err != nil || r.OutputTokens != 200 {
			t.Fatalf("prompt %d alone: %v, %d tokens", i, err, r.OutputTokens)
		}
	}
	before := e.Stats().Preemptions
	together := make([]string, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			var r Result
			var gerr error
			if together[i], r, gerr = generate(t, e, context.Background(), greedy(p, 200)); gerr != nil || r.OutputTokens != 200 {
				t.Errorf("prompt %d together: %v, %d tokens", i, gerr, r.OutputTokens)
			}
		})
	}
	wg.Wait()
	if e.Stats().Preemptions == before {
		t.Errorf("no preemption, yet the two needed more than the pool")
	}
	t.Logf("one request of %d+%d tokens alone; two together: %d preemption(s)", res.PromptTokens, res.OutputTokens, e.Stats().Preemptions-before)
	for i := range prompts {
		if together[i] != alone[i] {
			t.Errorf("prompt %d: together %q, alone %q", i, together[i], alone[i])
		}
	}
	if st := e.Stats(); st.KVCacheTokens > 512 || st.Running != 0 {
		t.Errorf("after: %+v", st)
	}
}
