package engine

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ollama/ollama/llama"
)

// SamplingParams control how a token is drawn from the logits. The zero
// value is greedy decoding; with a Temperature above 0, TopP must be set
// (1 to leave it off), since 0 keeps only the most probable token.
type SamplingParams struct {
	Temperature float32 // 0: greedy (argmax)
	TopK        int     // keep the k most probable tokens; 0: disabled
	// TopP keeps the most probable tokens whose probabilities add up to
	// at least TopP: 1 disables; 0 keeps only the most probable token.
	TopP float32
	// MinP drops the tokens less probable than MinP times the most
	// probable one: 0 disables; 1 keeps only the most probable token
	// (and any tied with it).
	MinP          float32
	RepeatPenalty float32 // 1 or 0: disabled
	RepeatLastN   int     // window of recent tokens the penalties look at
	// FrequencyPenalty and PresencePenalty (OpenAI's, in [-2, 2]) lower a
	// token's logit by FrequencyPenalty times its count in the window, and
	// by PresencePenalty once if it is there at all; 0 disables.
	FrequencyPenalty float32
	PresencePenalty  float32
	// LogitBias is added to the logits of the tokens it names (OpenAI's
	// logit_bias, in [-100, 100]; -100 in effect bans a token).
	LogitBias map[int]float32
	Seed      uint64
}

type candidate struct {
	id    int32
	logit float32
}

// sampler draws tokens for one sequence. It keeps its buffers between calls
// so sampling does not allocate per token.
type sampler struct {
	p     SamplingParams
	rng   *rand.Rand
	cands []candidate
	probs []float32

	// grammar, when set, constrains the tokens drawn (see pick); ends
	// marks the tokens that end the generation.
	grammar *llama.Grammar
	ends    []bool
	td      []llama.TokenData

	counts map[int]int // the window's token counts, reused
}

func newSampler(p SamplingParams) *sampler {
	return &sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
}

// sample returns a token id from logits. recent holds the latest tokens of
// the sequence (prompt and output) for the repeat penalty. logits is read
// only, except that penalised entries are rewritten in place.
func (s *sampler) sample(logits []float32, recent []int) int {
	s.penalize(logits, recent)
	return s.choose(logits)
}

// penalize applies the repeat, frequency and presence penalties over
// recent and the logit biases to logits, in place.
func (s *sampler) penalize(logits []float32, recent []int) {
	p := s.p
	if p.RepeatPenalty > 0 && p.RepeatPenalty != 1 && p.RepeatLastN != 0 {
		window := recent
		if p.RepeatLastN > 0 && len(window) > p.RepeatLastN {
			window = window[len(window)-p.RepeatLastN:]
		}
		// a token repeated in the window is penalised once
		for i, t := range window {
			if t < 0 || t >= len(logits) || slices.Contains(window[:i], t) {
				continue
			}
			if logits[t] > 0 {
				logits[t] /= p.RepeatPenalty
			} else {
				logits[t] *= p.RepeatPenalty
			}
		}
	}
	if p.FrequencyPenalty != 0 || p.PresencePenalty != 0 {
		window := recent
		if p.RepeatLastN > 0 && len(window) > p.RepeatLastN {
			window = window[len(window)-p.RepeatLastN:]
		}
		if s.counts == nil {
			s.counts = make(map[int]int, 64)
		}
		clear(s.counts)
		for _, t := range window {
			if t >= 0 && t < len(logits) {
				s.counts[t]++
			}
		}
		for t, n := range s.counts {
			logits[t] -= float32(n)*p.FrequencyPenalty + p.PresencePenalty
		}
	}
	for t, b := range p.LogitBias {
		if t >= 0 && t < len(logits) {
			logits[t] += b
		}
	}
}

// choose draws a token from logits as they are (penalties applied).
func (s *sampler) choose(logits []float32) int {
	p := s.p
	if p.Temperature <= 0 {
		return argmax(logits)
	}

	// candidates: the top k, or every token
	c := s.cands[:0]
	if p.TopK > 0 && p.TopK < len(logits) {
		c = topK(c, logits, p.TopK)
	} else {
		for i, l := range logits {
			c = append(c, candidate{int32(i), l})
		}
		slices.SortFunc(c, func(a, b candidate) int {
			switch {
			case a.logit > b.logit:
				return -1
			case a.logit < b.logit:
				return 1
			}
			return int(a.id - b.id)
		})
	}
	s.cands = c
	return s.draw(c)
}

// draw samples from candidates sorted high to low, by temperature, min_p
// and top_p.
func (s *sampler) draw(c []candidate) int {
	p := s.p
	// softmax with temperature over the sorted candidates
	probs := s.probs[:0]
	maxL := c[0].logit
	var sum float64
	for _, x := range c {
		v := float32(math.Exp(float64((x.logit - maxL) / p.Temperature)))
		probs = append(probs, v)
		sum += float64(v)
	}
	s.probs = probs
	n := len(c)
	if p.MinP > 0 {
		// probs[0] is the largest; at MinP 1 only those equal to it stay
		cut := probs[0] * p.MinP
		for n > 1 && probs[n-1] < cut {
			sum -= float64(probs[n-1])
			n--
		}
	}
	if p.TopP < 1 {
		// at TopP 0 the first token already reaches it: only it stays
		var acc float64
		for i := range n {
			acc += float64(probs[i])
			if acc >= float64(p.TopP)*sum {
				n = i + 1
				sum = acc
				break
			}
		}
	}
	r := s.rng.Float64() * sum
	for i := range n {
		r -= float64(probs[i])
		if r <= 0 {
			return int(c[i].id)
		}
	}
	return int(c[n-1].id)
}

func argmax(logits []float32) int {
	if len(logits) == 0 {
		return 0
	}
	// four independent running maxima keep the comparisons out of one
	// dependency chain; the lowest index wins ties, as in a plain scan
	var bi [4]int
	bv := [4]float32{logits[0], logits[0], logits[0], logits[0]}
	i := 0
	for ; i+4 <= len(logits); i += 4 {
		l := logits[i : i+4 : i+4]
		if l[0] > bv[0] {
			bv[0], bi[0] = l[0], i
		}
		if l[1] > bv[1] {
			bv[1], bi[1] = l[1], i+1
		}
		if l[2] > bv[2] {
			bv[2], bi[2] = l[2], i+2
		}
		if l[3] > bv[3] {
			bv[3], bi[3] = l[3], i+3
		}
	}
	best, bestV := bi[0], bv[0]
	for k := 1; k < 4; k++ {
		if bv[k] > bestV || (bv[k] == bestV && bi[k] < best) {
			best, bestV = bi[k], bv[k]
		}
	}
	for ; i < len(logits); i++ {
		if logits[i] > bestV {
			best, bestV = i, logits[i]
		}
	}
	return best
}

// topK fills c with the k largest logits, sorted high to low, using a
// min-heap of size k: O(n log k) and no allocation once c has grown.
func topK(c []candidate, logits []float32, k int) []candidate {
	less := func(a, b candidate) bool { // a ranks below b
		return a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
	}
	down := func(h []candidate, i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			m := l
			if r := l + 1; r < len(h) && less(h[r], h[l]) {
				m = r
			}
			if !less(h[m], h[i]) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	var floor float32 // the heap's smallest logit, once it is full
	for i, l := range logits {
		if len(c) == k && l <= floor {
			continue // cannot enter the heap (ties keep the lower id already in)
		}
		x := candidate{int32(i), l}
		if len(c) < k {
			c = append(c, x)
			if len(c) == k {
				for j := k/2 - 1; j >= 0; j-- {
					down(c, j)
				}
				floor = c[0].logit
			}
			continue
		}
		if less(c[0], x) {
			c[0] = x
			down(c, 0)
			floor = c[0].logit
		}
	}
	slices.SortFunc(c, func(a, b candidate) int {
		if less(b, a) {
			return -1
		}
		if less(a, b) {
			return 1
		}
		return 0
	})
	return c
}
