package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qwend/qwend/synth"
)

var modelPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qwend-engine")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelPath = filepath.Join(dir, "tiny.gguf")
	if err := synth.WriteTiny(context.Background(), modelPath, 1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// the scheduler and every request goroutine are gone
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func newEngine(t testing.TB, cfg Config, opts ...Option) *Engine {
	t.Helper()
	cfg.ModelPath = modelPath
	cfg.ModelName = "tiny"
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	if cfg.ContextPerSlot == 0 {
		cfg.ContextPerSlot = 512
	}
	e, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func generate(t *testing.T, e *Engine, ctx context.Context, req Request) (string, Result, error) {
	t.Helper()
	var sb strings.Builder
	res, err := e.Generate(ctx, &req, func(s string) { sb.WriteString(s) })
	return sb.String(), res, err
}

func greedy(prompt string, n int) Request {
	return Request{Prompt: prompt, MaxTokens: n}
}

func TestGreedyDeterministicAloneAndConcurrent(t *testing.T) {
	e := newEngine(t, Config{Parallel: 4})
	prompts := []string{"def quicksort(items):", "func main() {", "The quick brown fox", "SELECT id FROM users"}
	alone := make([]string, len(prompts))
	for i, p := range prompts {
		text, res, err := generate(t, e, context.Background(), greedy(p, 24))
		if err != nil {
			t.Fatal(err)
		}
		if res.OutputTokens == 0 || text == "" {
			t.Fatalf("prompt %d: no output (%+v)", i, res)
		}
		alone[i] = text
	}
	// a second engine so no slot holds a cached prefix of these prompts
	e2 := newEngine(t, Config{Parallel: 4})
	together := make([]string, len(prompts))
	var wg sync.WaitGroup
	errs := make([]error, len(prompts))
	for i, p := range prompts {
		wg.Go(func() {
			together[i], _, errs[i] = generate(t, e2, context.Background(), greedy(p, 24))
		})
	}
	wg.Wait()
	for i := range prompts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if alone[i] != together[i] {
			t.Errorf("prompt %d: alone %q, among others %q", i, alone[i], together[i])
		}
	}
}

func TestSeededSamplingRepeats(t *testing.T) {
	e := newEngine(t, Config{Parallel: 2})
	req := Request{Prompt: "hello", MaxTokens: 16, Sampling: SamplingParams{Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: 7}, HasSeed: true}
	a, _, err := generate(t, e, context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := generate(t, e, context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("same seed gave %q then %q", a, b)
	}
}

func TestMaxTokensAndFinishReason(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	_, res, err := generate(t, e, context.Background(), greedy("count: 1 2 3", 5))
	if err != nil {
		t.Fatal(err)
	}
	if res.OutputTokens > 5 {
		t.Errorf("output tokens %d > max 5", res.OutputTokens)
	}
	if res.OutputTokens == 5 && res.FinishReason != FinishLength {
		t.Errorf("finish reason %q, want %q", res.FinishReason, FinishLength)
	}
	if res.PromptTokens == 0 || res.Admitted.IsZero() || res.FirstToken.IsZero() || res.Finished.Before(res.FirstToken) {
		t.Errorf("result timestamps or counts missing: %+v", res)
	}
}

func TestStopString(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	full, _, err := generate(t, e, context.Background(), greedy("def f(x):", 40))
	if err != nil {
		t.Fatal(err)
	}
	if len(full) < 4 {
		t.Skipf("greedy output %q too short to cut", full)
	}
	// stop at a string the unstopped output is known to contain
	stop := full[len(full)/2 : len(full)/2+2]
	cut := full[:strings.Index(full, stop)]
	got, res, err := generate(t, e, context.Background(), Request{Prompt: "def f(x):", MaxTokens: 40, Stop: []string{stop}})
	if err != nil {
		t.Fatal(err)
	}
	if got != cut {
		t.Errorf("with stop %q: got %q, want %q", stop, got, cut)
	}
	if res.FinishReason != FinishStop {
		t.Errorf("finish reason %q, want stop", res.FinishReason)
	}
}

func TestContextWindowRefusedBeforeCompute(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 64})
	_, res, err := generate(t, e, context.Background(), greedy(strings.Repeat("hello there ", 64), 1))
	if !errors.Is(err, ErrContextWindow) {
		t.Fatalf("err %v, want ErrContextWindow", err)
	}
	if !res.Admitted.IsZero() || res.OutputTokens != 0 {
		t.Errorf("refused request was admitted: %+v", res)
	}
	if ErrorType(err) != "context_window_exceeded" {
		t.Errorf("error type %q", ErrorType(err))
	}
}

// Max tokens past the room the prompt leaves, up to the largest ints, are
// clamped to that room and end with "length"; negative ones are invalid; a
// prompt that fills the context is refused whatever the max. Nothing
// overflows on the way.
func TestMaxTokensBoundsWithoutOverflow(t *testing.T) {
	const ctxTokens = 64
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: ctxTokens})
	prompt := "hello there"
	toks, err := e.Tokenize(prompt)
	if err != nil {
		t.Fatal(err)
	}
	room := ctxTokens - len(toks)
	long := strings.Repeat("hello there ", ctxTokens)
	for _, tc := range []struct {
		prompt    string
		maxTokens int
		want      error // nil: clamped to the room
	}{
		{prompt, math.MaxInt, nil},
		{prompt, math.MaxInt - 1, nil},
		{prompt, math.MaxInt - len(toks) + 1, nil},
		{prompt, math.MaxInt64, nil},
		{prompt, math.MaxInt32, nil},
		{prompt, math.MaxUint32, nil},
		{prompt, 1 << 40, nil},
		{prompt, room + 1, nil},
		{prompt, -1, ErrInvalid},
		{prompt, math.MinInt, ErrInvalid},
		{long, 0, ErrContextWindow},
		{long, 1, ErrContextWindow},
		{long, math.MaxInt, ErrContextWindow},
	} {
		// a greedy stop-free run could end early on an end-of-generation
		// token: what is checked is the bound, and that it ran
		_, res, err := generate(t, e, context.Background(), greedy(tc.prompt, tc.maxTokens))
		switch {
		case !errors.Is(err, tc.want):
			t.Errorf("%d-byte prompt, max_tokens %d: err %v, want %v", len(tc.prompt), tc.maxTokens, err, tc.want)
		case tc.want != nil && !res.Admitted.IsZero():
			t.Errorf("%d-byte prompt, max_tokens %d: admitted", len(tc.prompt), tc.maxTokens)
		case tc.want == nil && (res.OutputTokens == 0 || res.OutputTokens > room || res.OutputTokens == room && res.FinishReason != FinishLength):
			t.Errorf("max_tokens %d: %d tokens out (room %d), finish %q", tc.maxTokens, res.OutputTokens, room, res.FinishReason)
		}
	}
}

func TestCancellationFreesSlot(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, QueueLength: 0})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		req := greedy("a long story:", 400)
		_, err := e.Generate(ctx, &req, func(string) { once.Do(func() { close(started) }) })
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, ErrCancelled) {
		t.Fatalf("cancelled request: err %v", err)
	}
	// the only slot is free again: a new request runs to completion
	_, res, err := generate(t, e, context.Background(), greedy("next", 3))
	if err != nil {
		t.Fatalf("after cancel: %v", err)
	}
	if res.OutputTokens == 0 {
		t.Error("no output after cancel")
	}
	if s := e.Stats(); s.Running != 0 || s.Waiting != 0 {
		t.Errorf("stats after all done: %+v", s)
	}
}

func TestTimeout(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, _, err := generate(t, e, ctx, greedy("hello", 50))
	if !errors.Is(err, ErrTimeout) || ErrorType(err) != "timeout" {
		t.Fatalf("err %v (type %q), want timeout", err, ErrorType(err))
	}
}

func TestQueueFull(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, QueueLength: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// occupy the slot and the queue place with requests that run until cancelled
	var wg sync.WaitGroup
	running := make(chan struct{})
	var once sync.Once
	for range 2 {
		wg.Go(func() {
			req := greedy("busy", 400)
			e.Generate(ctx, &req, func(string) { once.Do(func() { close(running) }) })
		})
	}
	<-running
	// both are admitted once one runs and the other is counted: wait for it
	for e.Stats().Running+e.Stats().Waiting < 2 {
		time.Sleep(time.Millisecond)
	}
	_, _, err := generate(t, e, context.Background(), greedy("one more", 5))
	if !errors.Is(err, ErrQueueFull) {
		t.Errorf("third request: err %v, want ErrQueueFull", err)
	}
	cancel()
	wg.Wait()
}

func TestPrefixCacheHit(t *testing.T) {
	e := newEngine(t, Config{Parallel: 2})
	prompt := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite a function.<|im_end|>\n"
	_, first, err := generate(t, e, context.Background(), greedy(prompt, 4))
	if err != nil {
		t.Fatal(err)
	}
	if first.CachedTokens != 0 {
		t.Errorf("first request cached %d tokens, want 0", first.CachedTokens)
	}
	_, second, err := generate(t, e, context.Background(), greedy(prompt+"again", 4))
	if err != nil {
		t.Fatal(err)
	}
	if second.CachedTokens < first.PromptTokens-1 {
		t.Errorf("second request reused %d tokens, want at least %d", second.CachedTokens, first.PromptTokens-1)
	}
}

func TestCloseFailsNothingAfter(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	_, _, err := generate(t, e, context.Background(), greedy("hello", 3))
	if !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v, want ErrClosed", err)
	}
}

func TestLogitsViewMatchesBinding(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	// run a decode on this goroutine's view of the context: stop the
	// scheduler first so the context is ours alone
	e.stop()
	<-e.done
	toks, err := e.Tokenize("hello world")
	if err != nil {
		t.Fatal(err)
	}
	e.batch.Clear()
	for i, tk := range toks {
		e.batch.Add(tk, nil, i, i == len(toks)-1, 0)
	}
	if err := e.lctx.Decode(e.batch); err != nil {
		t.Fatal(err)
	}
	want := e.lctx.GetLogitsIth(len(toks) - 1)
	got := logitsView(e.lctx, len(toks)-1, e.nVocab)
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("view %d values, binding %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: view %v, binding %v", i, got[i], want[i])
		}
	}
}

// The scheduler's step (pack, decode, sample, hand text over) allocates
// nothing once its sequences are decoding.
func TestStepDoesNotAllocate(t *testing.T) {
	e := newEngine(t, Config{Parallel: 2})
	// take the context over from the scheduler
	e.stop()
	<-e.done
	slots := e.newSlots()
	defer e.pool.close()
	prompt, err := e.Tokenize("func main() {")
	if err != nil {
		t.Fatal(err)
	}
	var pending []*sequence
	for range slots {
		pending = append(pending, &sequence{
			ctx: context.Background(), req: &Request{Sampling: SamplingParams{RepeatPenalty: 1.5, RepeatLastN: 64}},
			prompt: prompt, maxOut: 400, out: make(chan output, 512), done: make(chan struct{}),
		})
	}
	if rest := e.admit(slots, pending); len(rest) != 0 {
		t.Fatalf("%d sequences not admitted", len(rest))
	}
	e.step(slots) // prefill
	e.step(slots)
	if n := testing.AllocsPerRun(50, func() { e.step(slots) }); n != 0 {
		t.Errorf("a decoding step allocates %.1f times", n)
	}
	for i, q := range pending {
		if slots[i].seq != q {
			t.Fatalf("sequence %d finished early (%q): the steps measured were not all decoding", i, q.res.FinishReason)
		}
		if got := q.res.OutputTokens; got < 50 {
			t.Errorf("sequence %d: %d tokens out after 52 steps", i, got)
		}
	}
}

// Template segments come from the cache after their first use and give the
// same tokens as tokenizing them afresh; content is never cached.
func TestTemplateSegmentsCached(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	req := &Request{Segments: chatSegments("You write Go.", "<|im_start|> is plain text here")}
	var want []int
	for _, s := range req.Segments {
		tok, err := e.tokenize(s.Text, s.Special)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, tok...)
	}
	for range 2 {
		got, err := e.tokenizeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tokens %v, want %v", got, want)
		}
	}
	e.segMu.RLock()
	defer e.segMu.RUnlock()
	if len(e.segCache) != 4 {
		t.Errorf("%d cached segments, want the 4 distinct special ones: %v", len(e.segCache), e.segCache)
	}
	for text := range e.segCache {
		if !strings.HasPrefix(text, "<|im_") {
			t.Errorf("content %q cached", text)
		}
	}
}

// go test -run xxx -bench TokenizeChat ./engine
// A system and a user message in the chat template: seven segments, four of
// them template text. uncached tokenizes every segment (as before the cache);
// cached serves the template segments from the cache after the first request.
func BenchmarkTokenizeChat(b *testing.B) {
	e := newEngine(b, Config{Parallel: 1})
	req := &Request{Segments: chatSegments("You write Go.", "Write fizzbuzz.")}
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			for _, s := range req.Segments {
				if _, err := e.tokenize(s.Text, s.Special); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.tokenizeRequest(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// chatSegments is a system and a user message in Qwen's chat template.
func chatSegments(system, user string) []Segment {
	return []Segment{
		{Text: "<|im_start|>system\n", Special: true}, {Text: system}, {Text: "<|im_end|>\n", Special: true},
		{Text: "<|im_start|>user\n", Special: true}, {Text: user}, {Text: "<|im_end|>\n", Special: true},
		{Text: "<|im_start|>assistant\n", Special: true},
	}
}
