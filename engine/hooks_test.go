package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Queued is called once a request holds its place, before its first
// token, and not for one refused with ErrQueueFull; Idle ticks while it
// waits for the busy slot, and stops once text comes out.
func TestQueuedAndIdleHooks(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, QueueLength: 1, ContextPerSlot: 4096})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	holdDone := make(chan error, 1)
	go func() {
		req := greedy("hold the slot:", 4000)
		_, err := e.Generate(ctx, &req, func(string) { once.Do(func() { close(started) }) })
		holdDone <- err
	}()
	<-started

	var queued, idle, emitted atomic.Int32
	var idleAfterText atomic.Bool
	waiting := make(chan struct{}, 8)
	req := greedy("wait for it", 3)
	req.Queued = func() { queued.Add(1) }
	req.IdleInterval = time.Millisecond
	req.Idle = func() {
		if emitted.Load() > 0 {
			idleAfterText.Store(true)
		}
		if idle.Add(1) == 3 {
			// it has waited three intervals behind the busy slot: free it
			waiting <- struct{}{}
		}
	}
	go func() {
		<-waiting
		cancel()
	}()
	// the queue has one place: a third request is refused without Queued
	refused := greedy("no room", 2)
	var refusedQueued atomic.Bool
	refused.Queued = func() { refusedQueued.Store(true) }

	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		_, err = e.Generate(context.Background(), &req, func(string) { emitted.Add(1) })
	}()
	for queued.Load() == 0 {
		time.Sleep(time.Millisecond) // polling until the waiting request holds its place
	}
	if _, qerr := e.Generate(context.Background(), &refused, func(string) {}); !errors.Is(qerr, ErrQueueFull) || refusedQueued.Load() {
		t.Errorf("third request: %v, queued hook called: %v", qerr, refusedQueued.Load())
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if queued.Load() != 1 || idle.Load() < 3 || emitted.Load() == 0 || idleAfterText.Load() {
		t.Errorf("queued %d, idle %d, emitted %d, idle after text %v", queued.Load(), idle.Load(), emitted.Load(), idleAfterText.Load())
	}
	if herr := <-holdDone; !errors.Is(herr, ErrCancelled) {
		t.Errorf("holding request: %v", herr)
	}
}

// blockingObserver holds the scheduler inside a step until released.
type blockingObserver struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (o *blockingObserver) ObserveStep(StepStats) {
	o.once.Do(func() {
		close(o.entered)
		<-o.release
	})
}

// A scheduler stuck in a step while a request waits is reported stalled;
// an idle engine, or one that steps, is not.
func TestStalledScheduler(t *testing.T) {
	obs := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEngine(t, Config{Parallel: 1}, WithObserver(obs))
	if stalled, _ := e.Stalled(0); stalled {
		t.Fatal("an idle engine reported stalled")
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := generate(t, e, context.Background(), greedy("stall", 4))
		done <- err
	}()
	<-obs.entered                     // the first step is held
	time.Sleep(20 * time.Millisecond) // the stall being measured, not synchronisation
	stalled, why := e.Stalled(10 * time.Millisecond)
	if !stalled || why == "" {
		t.Errorf("held scheduler: stalled %v (%q)", stalled, why)
	}
	if stalled, _ := e.Stalled(time.Hour); stalled {
		t.Error("stalled under a one-hour threshold")
	}
	close(obs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stalled, _ := e.Stalled(0); stalled {
		t.Error("stalled after the request finished")
	}
}

// Progress reports a long prompt's prefill chunk by chunk: first the
// cached part, then whole chunks of BatchSize tokens (reports may merge
// when the caller is slow), growing, the
// last with the whole prompt, and all of it before the first text. A
// second run of the same prompt starts from the cached part.
func TestPromptProgress(t *testing.T) {
	const batch = 64
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 4096, BatchSize: batch})
	prompt := strings.Repeat("progress reports the prefill ", 40)
	run := func() []PromptProgress {
		var got []PromptProgress
		emitted := false
		req := greedy(prompt, 4)
		req.Progress = func(p PromptProgress) {
			if emitted {
				t.Errorf("progress %+v after text", p)
			}
			got = append(got, p)
		}
		if _, err := e.Generate(context.Background(), &req, func(string) { emitted = true }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(got []PromptProgress, wantCachedMin int) {
		t.Helper()
		if len(got) == 0 {
			t.Fatal("no progress reported")
		}
		total := got[0].Total
		if got[0].Cached < wantCachedMin {
			t.Errorf("first report %+v: want at least %d cached", got[0], wantCachedMin)
		}
		for i, p := range got {
			if i > 0 {
				prev := got[i-1]
				if p.Total != total || p.Cached != got[0].Cached || p.Processed <= prev.Processed || p.Elapsed < prev.Elapsed {
					t.Errorf("report %d %+v after %+v", i, p, prev)
				}
			}
			if (p.Processed-p.Cached)%batch != 0 && p.Processed != total {
				t.Errorf("report %d %+v: not a whole number of %d-token chunks", i, p, batch)
			}
		}
		if last := got[len(got)-1]; last.Processed != total {
			t.Errorf("last report %+v: want all %d tokens processed", last, total)
		}
	}
	first := run()
	check(first, 0)
	if total := first[0].Total; total < 3*batch {
		t.Fatalf("prompt of %d tokens: too short for chunks of %d", total, batch)
	}
	second := run()
	check(second, first[0].Total-1) // all but the token whose logits are needed
}
