package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestSafeChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", " ", "\n", "\n\n", "\t", "é", "!", "x\n", "<|im_end|>"}
	for range 500 {
		var b strings.Builder
		for n := rng.IntN(400); n > 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		text := b.String()
		size := 1 + rng.IntN(40)
		pieces := safeChunks(text, size)
		if strings.Join(pieces, "") != text {
			t.Fatalf("pieces of %q do not join back", text)
		}
		for i, p := range pieces {
			if p == "" {
				t.Fatalf("empty piece in %q", text)
			}
			if i > 0 && !safeCut(pieces[i-1]+p, len(pieces[i-1])) {
				t.Fatalf("unsafe cut before %q in %q", p, text)
			}
		}
	}
}

// Cutting at those places changes no token: a long text of many lines
// tokenizes in chunks exactly as in one call.
func TestChunkedTokenizationIsExact(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	var b strings.Builder
	for i := range 12000 {
		b.WriteString([]string{"func f() {\n", "\treturn  x + 1 // done!\n", "}\n", "\n", "  indented é line\n", "<|im_end|> text\n"}[i%6])
	}
	text := b.String()
	if len(text) <= tokenizeChunk {
		t.Fatalf("text of %d bytes is not over a chunk", len(text))
	}
	whole, err := e.model.Tokenize(text, false, true)
	if err != nil {
		t.Fatal(err)
	}
	chunked, err := e.tokenizeBounded(context.Background(), &Request{Prompt: text}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != len(chunked) {
		t.Fatalf("%d tokens in one call, %d in chunks", len(whole), len(chunked))
	}
	for i := range whole {
		if whole[i] != chunked[i] {
			t.Fatalf("token %d: %d in one call, %d in chunks", i, whole[i], chunked[i])
		}
	}
}

// An oversized prompt, or a body of very many small messages, is refused
// with ErrContextWindow after about a context's worth of work, not all of
// it.
func TestOversizedPromptsStopEarly(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 512})
	huge := strings.Repeat("lorem ipsum dolor\n", 400_000) // 7.2 MB
	start := time.Now()
	_, res, err := generate(t, e, context.Background(), greedy(huge, 1))
	if !errors.Is(err, ErrContextWindow) || res.PromptTokens > 512+2*tokenizeChunk {
		t.Errorf("7 MB prompt: %v after %d tokens", err, res.PromptTokens)
	}
	t.Logf("7 MB prompt refused in %s", time.Since(start))

	var segs []Segment
	for range 100_000 {
		segs = append(segs, Segment{Text: "<|im_start|>user\n", Special: true}, Segment{Text: "hi"}, Segment{Text: "<|im_end|>\n", Special: true})
	}
	req := Request{Segments: segs, MaxTokens: 1}
	start = time.Now()
	if _, err := e.Generate(context.Background(), &req, func(string) {}); !errors.Is(err, ErrContextWindow) {
		t.Errorf("100,000 messages: %v", err)
	}
	t.Logf("100,000 messages refused in %s", time.Since(start))

	// a cancelled request stops tokenizing
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.tokenizeBounded(ctx, &Request{Prompt: huge}, 0); !errors.Is(err, ErrCancelled) {
		t.Errorf("cancelled: %v", err)
	}
}

// With every place taken, a request is refused before it is tokenized:
// overload costs no tokenization.
func TestQueueFullBeforeTokenizing(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, QueueLength: 0, ContextPerSlot: 4096})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := greedy("hold", 4000)
		var once bool
		e.Generate(ctx, &req, func(string) {
			if !once {
				once = true
				close(started)
			}
		})
	}()
	<-started
	req := greedy(strings.Repeat("lorem ipsum dolor\n", 400_000), 1)
	_, res, err := generate(t, e, context.Background(), req)
	if !errors.Is(err, ErrQueueFull) || res.PromptTokens != 0 {
		t.Errorf("err %v after %d prompt tokens, want ErrQueueFull before tokenizing", err, res.PromptTokens)
	}
	cancel()
	<-done
}
