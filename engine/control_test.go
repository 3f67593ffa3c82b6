package engine

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/qwend/qwend/synth"
)

// Every control token of the vocabulary ends a generation with "stop"
// when it is sampled, the end-of-generation ones and the others alike, and
// its text never reaches the output; a user-defined or plain token is
// text.
func TestControlTokensEndGeneration(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	var ends []string
	for tok, end := range e.ends {
		if end {
			ends = append(ends, e.model.TokenToPiece(tok))
		}
	}
	if !slices.Equal(ends, synth.SpecialTokens) {
		t.Fatalf("tokens that end a generation %q, want the special tokens %q", ends, synth.SpecialTokens)
	}
	e.stop() // take the context over from the scheduler
	<-e.done
	prompt, err := e.Tokenize("Invent a word")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.Tokenize(" meda")
	if err != nil {
		t.Fatal(err)
	}
	special := func(text string) int {
		tok, err := e.Tokenize(text)
		if err != nil || len(tok) != 1 {
			t.Fatalf("%s: %v %v", text, tok, err)
		}
		return tok[0]
	}
	for _, tc := range []struct {
		name string
		tok  int
		ends bool
	}{
		{"<|im_start|>", special("<|im_start|>"), true},
		{"<|im_end|>", special("<|im_end|>"), true},
		{"<|endoftext|>", special("<|endoftext|>"), true},
		{"<|fim_middle|>", special("<|fim_middle|>"), true},
		{"<|fim_pad|>", special("<|fim_pad|>"), true},
		{"plain text", plain[0], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slots := e.newSlots()
			e.pool.close()
			// two plain tokens, then the one under test
			draws := []int{plain[0], plain[len(plain)-1], tc.tok}
			e.pool = newSamplePool(0, func(s *slot) { s.next, draws = draws[0], draws[1:] })
			defer e.pool.close()
			q := &sequence{ctx: context.Background(), req: &Request{ReturnTokens: true}, prompt: prompt, maxOut: 3,
				out: make(chan output, 4), done: make(chan struct{})}
			e.admit(slots, []*sequence{q})
			for slots[0].seq == q {
				e.step(slots)
			}
			var text strings.Builder
			for len(q.out) > 0 {
				text.WriteString((<-q.out).text)
			}
			want := FinishLength
			wantTokens := append(slices.Clone(prompt), plain[0], plain[len(plain)-1], tc.tok)
			if tc.ends {
				want, wantTokens = FinishStop, wantTokens[:len(wantTokens)-1]
			}
			if q.res.FinishReason != want || strings.Contains(text.String(), "<|") {
				t.Errorf("finish %q, text %q; want %q and no control token text", q.res.FinishReason, text.String(), want)
			}
			if !slices.Equal(q.res.Tokens, wantTokens) || q.res.OutputTokens != len(wantTokens)-len(prompt) {
				t.Errorf("tokens %v (%d out), want %v", q.res.Tokens, q.res.OutputTokens, wantTokens)
			}
		})
	}
}

// Result.Tokens holds the prompt's and the output's token ids when asked
// for, and nothing otherwise; decoding them gives the prompt and the text.
func TestResultTokens(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	req := greedy("def add(a, b):", 8)
	req.ReturnTokens = true
	text, res, err := generate(t, e, context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := e.Tokenize(req.Prompt)
	if len(res.Tokens) != len(prompt)+res.OutputTokens || !slices.Equal(res.Tokens[:len(prompt)], prompt) {
		t.Fatalf("tokens %v for prompt %v and %d output tokens", res.Tokens, prompt, res.OutputTokens)
	}
	var out strings.Builder
	for _, tok := range res.Tokens[len(prompt):] {
		out.WriteString(e.piece(tok))
	}
	if out.String() != text {
		t.Errorf("output tokens read %q, text %q", out.String(), text)
	}
	_, res, err = generate(t, e, context.Background(), greedy("def add(a, b):", 8))
	if err != nil || res.Tokens != nil {
		t.Errorf("tokens %v without ReturnTokens (%v)", res.Tokens, err)
	}
}
