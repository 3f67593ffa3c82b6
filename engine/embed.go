package engine

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/ollama/ollama/llama"
	"github.com/ollama/ollama/ml"
)

// embedder is the engine's embedding context: one sequence, the slot's
// context, its own KV cache, so embeddings never take a slot or disturb
// the scheduler's batch. Made on first use.
type embedder struct {
	once  sync.Once
	err   error
	mu    sync.Mutex // one input at a time
	lctx  *llama.Context
	batch *llama.Batch
}

// Embedding is one input's vector: the mean of its tokens' hidden states,
// scaled to unit length (L2); Tokens is how many the input had.
type Embedding struct {
	Vector []float32
	Tokens int
}

// Embed returns the embeddings of inputs in order. Each input must fit the
// context (else ErrContextWindow naming it by index) and may not be empty
// (ErrInvalid). ctx is checked between inputs.
func (e *Engine) Embed(ctx context.Context, inputs []string) ([]Embedding, error) {
	return e.embed(ctx, inputs, false)
}

// EmbedTruncated is Embed with inputs over the context cut to its length
// (Ollama's truncate, on by default there).
func (e *Engine) EmbedTruncated(ctx context.Context, inputs []string) ([]Embedding, error) {
	return e.embed(ctx, inputs, true)
}

func (e *Engine) embed(ctx context.Context, inputs []string, truncate bool) ([]Embedding, error) {
	e.emb.once.Do(func() {
		fa := map[string]ml.FlashAttentionType{"auto": ml.FlashAttentionAuto, "on": ml.FlashAttentionEnabled, "off": ml.FlashAttentionDisabled}[e.cfg.FlashAttention]
		params := llama.NewContextParams(e.cfg.ContextPerSlot, e.cfg.BatchSize, 1, e.cfg.Threads, fa, e.cfg.KVCacheType)
		if e.emb.lctx, e.emb.err = llama.NewContextWithModel(e.model, params); e.emb.err == nil {
			e.emb.batch, e.emb.err = llama.NewBatch(e.cfg.BatchSize, 1, 0)
		}
	})
	if e.emb.err != nil {
		return nil, fmt.Errorf("embedding context: %w", e.emb.err)
	}
	out := make([]Embedding, 0, len(inputs))
	for i, text := range inputs {
		if ctx.Err() != nil {
			return nil, ctxErr(ctx)
		}
		if text == "" {
			return nil, fmt.Errorf("%w: input %d is empty", ErrInvalid, i)
		}
		toks, err := e.tokenizeBounded(ctx, &Request{Segments: []Segment{{Text: text}}}, e.cfg.ContextPerSlot)
		if err == errPromptOverContext && truncate {
			toks, err = toks[:e.cfg.ContextPerSlot], nil
		}
		if err == errPromptOverContext {
			return nil, fmt.Errorf("%w: input %d is over the %d tokens the context holds", ErrContextWindow, i, e.cfg.ContextPerSlot)
		}
		if err != nil {
			return nil, err
		}
		v, err := e.embedTokens(toks)
		if err != nil {
			return nil, err
		}
		out = append(out, Embedding{Vector: v, Tokens: len(toks)})
	}
	return out, nil
}

// embedTokens decodes toks on the embedding context, batch by batch, and
// averages the hidden state of every token.
func (e *Engine) embedTokens(toks []int) ([]float32, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	em := &e.emb
	em.mu.Lock()
	defer em.mu.Unlock()
	em.lctx.KvCacheClear()
	var sum []float64
	for start := 0; start < len(toks); start += e.cfg.BatchSize {
		end := min(len(toks), start+e.cfg.BatchSize)
		em.batch.Clear()
		for i := start; i < end; i++ {
			em.batch.Add(toks[i], nil, i, true, 0)
		}
		if err := em.lctx.Decode(em.batch); err != nil {
			return nil, fmt.Errorf("embedding decode: %w", err)
		}
		for i := range end - start {
			h := em.lctx.GetEmbeddingsIth(i)
			if h == nil {
				return nil, fmt.Errorf("embedding: no hidden state for token %d", start+i)
			}
			if sum == nil {
				sum = make([]float64, len(h))
			}
			for j, x := range h {
				sum[j] += float64(x)
			}
		}
	}
	var norm float64
	for j := range sum {
		sum[j] /= float64(len(toks))
		norm += sum[j] * sum[j]
	}
	norm = math.Sqrt(norm)
	v := make([]float32, len(sum))
	for j := range sum {
		if norm > 0 {
			v[j] = float32(sum[j] / norm)
		}
	}
	return v, nil
}
