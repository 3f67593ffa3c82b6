// Package synth writes Qwen2-architecture GGUF files with random weights.
//
// The files load and run in llama.cpp exactly like a real Qwen model of the
// same shape: the text they produce is noise, but the compute and memory cost
// per token is the real model's. Output is byte-identical for the same shape,
// dtype and seed.
package synth

import (
	"fmt"
	"slices"
	"strings"
)

// Shape is the architecture of a Qwen2 model.
type Shape struct {
	Name          string
	Embedding     int // hidden size
	Blocks        int // transformer layers
	FeedForward   int // intermediate size of the MLP
	Heads         int // attention heads
	KVHeads       int // key/value heads (grouped-query attention)
	Vocab         int // rows of the embedding matrix (tokens array length)
	ContextLength int // trained context length
	RopeFreqBase  float32
	RMSNormEps    float32
	TiedEmbedding bool // output projection shares token_embd.weight
}

// HeadDim is the width of one attention head.
func (s Shape) HeadDim() int { return s.Embedding / s.Heads }

// ParameterCount is the number of weights the file holds.
func (s Shape) ParameterCount() uint64 {
	e, f, kv := uint64(s.Embedding), uint64(s.FeedForward), uint64(s.KVHeads*s.HeadDim())
	perBlock := 2*e + // norms
		e*e + e + // q
		2*(e*kv+kv) + // k, v
		e*e + // o
		3*e*f // gate, up, down
	n := uint64(s.Vocab)*e + e + uint64(s.Blocks)*perBlock
	if !s.TiedEmbedding {
		n += uint64(s.Vocab) * e
	}
	return n
}

var shapes = []Shape{
	{Name: "tiny", Embedding: 64, Blocks: 2, FeedForward: 128, Heads: 4, KVHeads: 2, Vocab: 1024,
		ContextLength: 8192, RopeFreqBase: 1e6, RMSNormEps: 1e-6, TiedEmbedding: true},
	{Name: "qwen2.5-coder-0.5b", Embedding: 896, Blocks: 24, FeedForward: 4864, Heads: 14, KVHeads: 2, Vocab: 151936,
		ContextLength: 32768, RopeFreqBase: 1e6, RMSNormEps: 1e-6, TiedEmbedding: true},
	{Name: "qwen2.5-coder-1.5b", Embedding: 1536, Blocks: 28, FeedForward: 8960, Heads: 12, KVHeads: 2, Vocab: 151936,
		ContextLength: 32768, RopeFreqBase: 1e6, RMSNormEps: 1e-6, TiedEmbedding: true},
	{Name: "qwen2.5-coder-7b", Embedding: 3584, Blocks: 28, FeedForward: 18944, Heads: 28, KVHeads: 4, Vocab: 152064,
		ContextLength: 32768, RopeFreqBase: 1e6, RMSNormEps: 1e-6, TiedEmbedding: false},
}

// Shapes lists the names LookupShape knows.
func Shapes() []string {
	names := make([]string, len(shapes))
	for i, s := range shapes {
		names[i] = s.Name
	}
	return names
}

// LookupShape returns the named shape.
func LookupShape(name string) (Shape, error) {
	i := slices.IndexFunc(shapes, func(s Shape) bool { return s.Name == name })
	if i < 0 {
		return Shape{}, fmt.Errorf("unknown shape %q (known: %s)", name, strings.Join(Shapes(), ", "))
	}
	return shapes[i], nil
}
