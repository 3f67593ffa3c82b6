package engine

import (
	"math/rand/v2"
	"testing"
)

// logit_bias moves the choice: -100 bans the greedy token, +100 forces
// another; frequency and presence penalties lower repeated tokens.
func TestLogitBiasAndPenalties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	logits := func() []float32 {
		l := make([]float32, 1000)
		for i := range l {
			l[i] = float32(rng.NormFloat64())
		}
		return l
	}
	base := logits()
	top := argmax(append([]float32(nil), base...))
	other := (top + 7) % len(base)
	for _, temp := range []float32{0, 1} {
		s := newSampler(SamplingParams{Temperature: temp, TopP: 1, LogitBias: map[int]float32{top: -100}, Seed: 1})
		for range 50 {
			if got := s.sample(append([]float32(nil), base...), nil); got == top {
				t.Fatalf("temperature %g: the banned token %d was drawn", temp, top)
			}
		}
		s = newSampler(SamplingParams{Temperature: temp, TopP: 1, LogitBias: map[int]float32{other: 100}, Seed: 1})
		if got := s.sample(append([]float32(nil), base...), nil); got != other {
			t.Errorf("temperature %g: +100 on %d drew %d", temp, other, got)
		}
	}
	// the top token repeated 3 times in the window: a frequency penalty of
	// 2 takes 6 off its logit, a presence penalty of 2 takes 2
	for _, tc := range []struct {
		p    SamplingParams
		want float32
	}{
		{SamplingParams{FrequencyPenalty: 2, RepeatLastN: 64}, base[top] - 6},
		{SamplingParams{PresencePenalty: 2, RepeatLastN: 64}, base[top] - 2},
		{SamplingParams{FrequencyPenalty: 1, PresencePenalty: 1, RepeatLastN: 2}, base[top] - 3}, // only 2 of the 3 in the window
	} {
		l := append([]float32(nil), base...)
		newSampler(tc.p).sample(l, []int{top, top, top})
		if l[top] != tc.want {
			t.Errorf("%+v: logit %g, want %g", tc.p, l[top], tc.want)
		}
	}
}
