package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

// run generates req, collecting the logprobs and checking that each batch
// arrives before the text that completes its tokens: the tokens' text so
// far is always a prefix of the text emitted once it is emitted.
func runLogprobs(t *testing.T, e *Engine, req Request) (string, []TokenLogprob) {
	t.Helper()
	var out strings.Builder
	var lps []TokenLogprob
	var lpText strings.Builder
	req.Logprobs = func(b []TokenLogprob) {
		lps = append(lps, b...)
		for _, lp := range b {
			lpText.WriteString(lp.Token)
		}
	}
	_, err := e.Generate(context.Background(), &req, func(s string) {
		out.WriteString(s)
		if !strings.HasPrefix(out.String(), lpText.String()) {
			t.Errorf("tokens %q passed before their text; emitted %q", lpText.String(), out.String())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), lps
}

// Greedy logprobs are log-softmax figures of the raw row: every one at
// most 0, the chosen token the likeliest (no penalty changed the row), the
// alternatives sorted and their probabilities summing to at most 1; the
// tokens' text is the output; a stop string drops the tokens it cut.
func TestLogprobs(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 512})
	req := greedy("def fibonacci(n):", 24)
	req.TopLogprobs = 5
	out, lps := runLogprobs(t, e, req)
	if len(lps) == 0 {
		t.Fatal("no logprobs")
	}
	var text strings.Builder
	for i, lp := range lps {
		text.WriteString(lp.Token)
		if lp.Logprob > 0 || math.IsNaN(lp.Logprob) || len(lp.Top) != 5 {
			t.Fatalf("token %d: %+v", i, lp)
		}
		if lp.Top[0].ID != lp.ID || math.Abs(lp.Top[0].Logprob-lp.Logprob) > 1e-9 {
			t.Errorf("token %d: greedy chose %d (%v), the likeliest is %+v", i, lp.ID, lp.Logprob, lp.Top[0])
		}
		var sum float64
		for j, a := range lp.Top {
			sum += math.Exp(a.Logprob)
			if j > 0 && a.Logprob > lp.Top[j-1].Logprob {
				t.Errorf("token %d: alternatives out of order: %+v", i, lp.Top)
			}
			if a.Token != e.piece(a.ID) {
				t.Errorf("token %d: alternative %d's text %q, its piece %q", i, a.ID, a.Token, e.piece(a.ID))
			}
		}
		if sum > 1+1e-6 {
			t.Errorf("token %d: top probabilities sum to %v", i, sum)
		}
	}
	if text.String() != out {
		t.Errorf("the tokens' text %q, the output %q", text.String(), out)
	}

	// a stop string inside the output: the tokens that reach into it are dropped
	if len(out) < 6 {
		t.Fatalf("output %q too short to stop in", out)
	}
	stop := out[len(out)/2 : len(out)/2+3]
	req = greedy("def fibonacci(n):", 24)
	req.Stop = []string{stop}
	cut, lps := runLogprobs(t, e, req)
	text.Reset()
	for _, lp := range lps {
		text.WriteString(lp.Token)
		if lp.Top != nil {
			t.Errorf("alternatives %+v without TopLogprobs", lp.Top)
		}
	}
	if !strings.HasPrefix(out, cut) || strings.Contains(cut, stop) || !strings.HasPrefix(cut, text.String()) || len(lps) >= 24 {
		t.Errorf("stop %q: output %q, tokens' text %q (%d tokens)", stop, cut, text.String(), len(lps))
	}

	req = greedy("x", 2)
	req.TopLogprobs = MaxTopLogprobs + 1
	req.Logprobs = func([]TokenLogprob) {}
	if _, err := e.Generate(context.Background(), &req, func(string) {}); !errors.Is(err, ErrInvalid) {
		t.Errorf("top_logprobs %d: %v", req.TopLogprobs, err)
	}
}
