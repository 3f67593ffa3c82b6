package engine

import (
	"math"
)

// MaxTopLogprobs is the most alternatives a token's TopLogprobs may ask for
// (OpenAI's and Ollama's limit).
const MaxTopLogprobs = 20

// TokenLogprob is one output token's log probability and, when asked for,
// the likeliest tokens at its position. Log probabilities are natural
// logarithms of the model's distribution: the log-softmax of its raw
// logits, before penalties, biases, temperature or a grammar (as Ollama's
// runner and llama-server report them).
type TokenLogprob struct {
	ID      int
	Token   string // the token's text; may be part of a UTF-8 sequence
	Logprob float64
	Top     []TopLogprob // the likeliest first; Request.TopLogprobs of them
}

// TopLogprob is an alternative at a token's position.
type TopLogprob struct {
	ID      int
	Token   string
	Logprob float64
}

// logprobState is a slot's logprob work for its current sequence: the raw
// row kept before sampling rewrites it, the figures of the token just
// sampled, and the tokens whose text has not gone out yet.
type logprobState struct {
	raw   []float32 // the step's raw logits (a copy)
	cands []candidate
	// the sampled token's figures (filled by a sampling worker)
	lse     float64
	chosen  float64
	top     []candidate
	pending []pendingLogprob
	// bytes of text pushed to the text buffer, and sent out
	pushed, sent int
}

type pendingLogprob struct {
	lp  TokenLogprob
	end int // the byte just after the token's text, counted from the first output byte
}

// keep copies the row before the sampler rewrites it in place.
func (l *logprobState) keep(logits []float32) { l.raw = append(l.raw[:0], logits...) }

// measure computes the log-softmax figures of token tok (and of the top n)
// from the kept row; called by a sampling worker.
func (l *logprobState) measure(tok, n int) {
	maxL := float32(math.Inf(-1))
	for _, v := range l.raw {
		maxL = max(maxL, v)
	}
	var sum float64
	for _, v := range l.raw {
		sum += math.Exp(float64(v - maxL))
	}
	l.lse = float64(maxL) + math.Log(sum)
	l.chosen = math.Inf(-1)
	if tok >= 0 && tok < len(l.raw) {
		l.chosen = float64(l.raw[tok]) - l.lse
	}
	l.top = l.top[:0]
	if n > 0 {
		l.cands = topK(l.cands[:0], l.raw, min(n, len(l.raw)))
		l.top = append(l.top, l.cands...)
	}
}

// add records the sampled token (its text piece is text) as pending until
// the text that holds its last byte goes out.
func (l *logprobState) add(tok int, text string, piece func(int) string) {
	lp := TokenLogprob{ID: tok, Token: text, Logprob: l.chosen}
	if len(l.top) > 0 {
		lp.Top = make([]TopLogprob, len(l.top))
		for i, c := range l.top {
			lp.Top[i] = TopLogprob{ID: int(c.id), Token: piece(int(c.id)), Logprob: float64(c.logit) - l.lse}
		}
	}
	l.pushed += len(text)
	l.pending = append(l.pending, pendingLogprob{lp: lp, end: l.pushed})
}

// release returns the pending tokens whose text lies wholly within the
// first sent+n output bytes, n being the text going out now.
func (l *logprobState) release(n int) []TokenLogprob {
	l.sent += n
	i := 0
	for i < len(l.pending) && l.pending[i].end <= l.sent {
		i++
	}
	if i == 0 {
		return nil
	}
	out := make([]TokenLogprob, i)
	for j := range i {
		out[j] = l.pending[j].lp
	}
	l.pending = append(l.pending[:0], l.pending[i:]...)
	return out
}

// reset starts a new sequence.
func (l *logprobState) reset() {
	l.pending = l.pending[:0]
	l.pushed, l.sent = 0, 0
}
