package synth

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/ollama/ollama/fs/ggml"
	"github.com/x448/float16"
)

// DType is the element type of the weight matrices.
type DType string

// Weight types: F16 and F32 are written as they are; Q8_0 and Q4_0 are
// quantized by ggml's own quantizer, every matrix (token embedding
// included) in that type, norms and biases in F32. Q4_K_M is llama.cpp's
// mix, made as llama-quantize makes it: the F16 model is written, then
// converted by llama_model_quantize (Q4_K for most matrices, Q6_K for part
// of attn_v and ffn_down and for the output; Q5_0 or Q8_0 where a row's
// length is not a multiple of 256, as in the 0.5B shape's 896).
const (
	F16    DType = "f16"
	F32    DType = "f32"
	Q8_0   DType = "q8_0"
	Q4_0   DType = "q4_0"
	Q4_K_M DType = "q4_k_m"
)

// ParseDType accepts "f16", "f32", "q8_0", "q4_0" or "q4_k_m".
func ParseDType(s string) (DType, error) {
	switch DType(s) {
	case F16, F32, Q8_0, Q4_0, Q4_K_M:
		return DType(s), nil
	}
	return "", fmt.Errorf("unknown dtype %q (known: f16, f32, q8_0, q4_0, q4_k_m)", s)
}

// quant is the ggml tensor type and llama.cpp file type of a quantized
// dtype; ok false for F16 and F32.
func (d DType) quant() (tensorType, fileType uint32, ok bool) {
	switch d {
	case Q8_0:
		return ggmlTypeQ8_0, fileTypeQ8_0, true
	case Q4_0:
		return ggmlTypeQ4_0, fileTypeQ4_0, true
	}
	return 0, 0, false
}

// Options selects what Write produces.
type Options struct {
	Shape Shape
	DType DType
	Seed  uint64
	// ChatTemplate is written as tokenizer.chat_template (a Jinja chat
	// template, such as Qwen2.5's); "" writes none, and qwend then prompts
	// the model with its ChatML fallback.
	ChatTemplate string
	// Tokenizer, when set, is the vocabulary written (Qwen2.5's, see
	// LoadTokenizer), with Qwen2.5's bos, eos and padding ids; the
	// embedding then has the shape's rows, or QwenVocabRows where the
	// shape has fewer (tiny). nil writes a small vocabulary learned from
	// an embedded corpus, padded with made-up words to the shape's rows.
	Tokenizer *Tokenizer
	// Progress, when set, is called about once a second with the bytes of
	// tensor data written so far and the total.
	Progress func(done, total int64)
}

// Write writes the model to path atomically (a temporary file renamed into
// place), so an interrupted run leaves no partial model behind.
func Write(ctx context.Context, path string, opts Options) error {
	if opts.DType == "" {
		opts.DType = F16
	}
	if _, err := ParseDType(string(opts.DType)); err != nil {
		return err
	}
	if opts.DType == Q4_K_M {
		return writeLlamaQuantized(ctx, path, opts, llamaFileTypeQ4_K_M)
	}
	if opts.Tokenizer != nil {
		opts.Shape.Vocab = opts.Tokenizer.vocabRows(opts.Shape)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create model file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename

	tensors, total := buildTensors(ctx, opts)
	var done atomic.Int64
	for _, t := range tensors {
		t.WriterTo.(*randomTensor).written = &done
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if opts.Progress == nil {
			return
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				opts.Progress(done.Load(), total)
			}
		}
	}()
	err = ggml.WriteGGUF(tmp, metadata(opts), tensors)
	close(stop)
	<-finished
	if err == nil {
		err = ctx.Err()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	return nil
}

// writeLlamaQuantized writes the F16 model beside path, then converts it
// with llama.cpp's quantizer into path (atomically: a temporary file
// renamed into place).
func writeLlamaQuantized(ctx context.Context, path string, opts Options, fileType uint32) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	f16, err := os.CreateTemp(dir, "."+base+".f16.*")
	if err != nil {
		return fmt.Errorf("create model file: %w", err)
	}
	f16.Close()
	defer os.Remove(f16.Name())
	src := opts
	src.DType = F16
	if err := Write(ctx, f16.Name(), src); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	out, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return fmt.Errorf("create model file: %w", err)
	}
	out.Close()
	defer os.Remove(out.Name()) // no-op after the rename
	if err := llamaQuantize(f16.Name(), out.Name(), fileType); err != nil {
		return fmt.Errorf("quantize to %s: %w", opts.DType, err)
	}
	if err := os.Rename(out.Name(), path); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	return nil
}

func metadata(opts Options) ggml.KV {
	s := opts.Shape
	var v vocabulary
	var bos uint32
	if opts.Tokenizer != nil {
		v = opts.Tokenizer.vocabulary(s.Vocab)
		bos = QwenFirstSpecialID
	} else {
		v = buildVocabulary(s.Vocab)
		bos = uint32(v.eos)
	}
	fileType := uint32(1) // MOSTLY_F16
	if opts.DType == F32 {
		fileType = 0
	}
	if _, ft, ok := opts.DType.quant(); ok {
		fileType = ft
	}
	kv := ggml.KV{
		"general.architecture":                   "qwen2",
		"general.name":                           "synthetic " + s.Name,
		"general.file_type":                      fileType,
		"general.parameter_count":                s.ParameterCount(),
		"general.alignment":                      uint32(32),
		"qwen2.context_length":                   uint32(s.ContextLength),
		"qwen2.embedding_length":                 uint32(s.Embedding),
		"qwen2.block_count":                      uint32(s.Blocks),
		"qwen2.feed_forward_length":              uint32(s.FeedForward),
		"qwen2.attention.head_count":             uint32(s.Heads),
		"qwen2.attention.head_count_kv":          uint32(s.KVHeads),
		"qwen2.rope.freq_base":                   s.RopeFreqBase,
		"qwen2.attention.layer_norm_rms_epsilon": s.RMSNormEps,
		"tokenizer.ggml.model":                   "gpt2",
		"tokenizer.ggml.pre":                     "qwen2",
		"tokenizer.ggml.tokens":                  v.tokens,
		"tokenizer.ggml.token_type":              v.types,
		"tokenizer.ggml.merges":                  v.merges,
		"tokenizer.ggml.eos_token_id":            uint32(v.eos),
		"tokenizer.ggml.padding_token_id":        bos,
		"tokenizer.ggml.bos_token_id":            bos,
		"tokenizer.ggml.add_bos_token":           false,
	}
	if opts.ChatTemplate != "" {
		kv["tokenizer.chat_template"] = opts.ChatTemplate
	}
	return kv
}

const (
	kindF32 = 0
	kindF16 = 1
)

func buildTensors(ctx context.Context, opts Options) ([]*ggml.Tensor, int64) {
	s := opts.Shape
	e, f, kv, vocab := uint64(s.Embedding), uint64(s.FeedForward), uint64(s.KVHeads*s.HeadDim()), uint64(s.Vocab)
	var ts []*ggml.Tensor
	var total int64
	add := func(name string, kind string, shape ...uint64) {
		t := &randomTensor{ctx: ctx, seed: opts.Seed, name: name, shape: shape, f16: opts.DType == F16}
		switch kind {
		case "norm": // RMS norm weights near one, always F32 (llama.cpp's convention)
			t.base, t.scale, t.f16 = 1, 0.1, false
		case "bias":
			t.scale, t.f16 = 0.02, false
		default: // matrices: scaled by fan-in so activations keep their size
			t.scale = float32(1 / math.Sqrt(float64(shape[0])))
			if tt, _, ok := opts.DType.quant(); ok {
				t.quant = int(tt)
			}
		}
		gt := &ggml.Tensor{Name: name, Kind: kindF32, Shape: shape, WriterTo: t}
		switch {
		case t.quant != 0:
			gt.Kind = uint32(t.quant)
		case t.f16:
			gt.Kind = kindF16
		}
		total += int64(gt.Size())
		ts = append(ts, gt)
	}
	add("token_embd.weight", "matrix", e, vocab)
	add("output_norm.weight", "norm", e)
	if !s.TiedEmbedding {
		add("output.weight", "matrix", e, vocab)
	}
	for b := range s.Blocks {
		p := fmt.Sprintf("blk.%d.", b)
		add(p+"attn_norm.weight", "norm", e)
		add(p+"attn_q.weight", "matrix", e, e)
		add(p+"attn_q.bias", "bias", e)
		add(p+"attn_k.weight", "matrix", e, kv)
		add(p+"attn_k.bias", "bias", kv)
		add(p+"attn_v.weight", "matrix", e, kv)
		add(p+"attn_v.bias", "bias", kv)
		add(p+"attn_output.weight", "matrix", e, e)
		add(p+"ffn_norm.weight", "norm", e)
		add(p+"ffn_gate.weight", "matrix", e, f)
		add(p+"ffn_up.weight", "matrix", e, f)
		add(p+"ffn_down.weight", "matrix", f, e)
	}
	return ts, total
}

// randomTensor writes uniform random values in [base-scale, base+scale),
// drawn from a generator seeded by the file's seed and the tensor's name, so
// the bytes do not depend on the order tensors are written in.
type randomTensor struct {
	ctx     context.Context
	seed    uint64
	name    string
	shape   []uint64
	f16     bool
	quant   int // a ggml quantized type, 0 for none
	base    float32
	scale   float32
	written *atomic.Int64
}

func (t *randomTensor) WriteTo(w io.Writer) (int64, error) {
	h := fnv.New64a()
	h.Write([]byte(t.name))
	rng := rand.New(rand.NewPCG(t.seed, h.Sum64()))
	n := uint64(1)
	for _, d := range t.shape {
		n *= d
	}
	if t.quant != 0 {
		return t.writeQuantized(w, rng, n)
	}
	elem := 4
	if t.f16 {
		elem = 2
	}
	const chunk = 1 << 16
	buf := make([]byte, chunk*elem)
	var written int64
	for n > 0 {
		if err := t.ctx.Err(); err != nil {
			return written, err
		}
		m := min(n, chunk)
		for i := range m {
			v := t.base + t.scale*(2*float32(rng.Uint32()>>8)/(1<<24)-1)
			if t.f16 {
				binary.LittleEndian.PutUint16(buf[i*2:], float16.Fromfloat32(v).Bits())
			} else {
				binary.LittleEndian.PutUint32(buf[i*4:], math.Float32bits(v))
			}
		}
		k, err := w.Write(buf[:int(m)*elem])
		written += int64(k)
		if t.written != nil {
			t.written.Add(int64(k))
		}
		if err != nil {
			return written, err
		}
		n -= m
	}
	return written, nil
}

// writeQuantized draws the same values as the F32 tensor and quantizes
// them, whole rows at a time.
func (t *randomTensor) writeQuantized(w io.Writer, rng *rand.Rand, n uint64) (int64, error) {
	rowLen := int(t.shape[0])
	rowsPerChunk := max(1, (1<<16)/rowLen)
	vals := make([]float32, rowsPerChunk*rowLen)
	buf := make([]byte, rowsPerChunk*quantizedRowSize(t.quant, rowLen))
	var written int64
	for rows := int(n) / rowLen; rows > 0; {
		if err := t.ctx.Err(); err != nil {
			return written, err
		}
		r := min(rows, rowsPerChunk)
		for i := range r * rowLen {
			vals[i] = t.base + t.scale*(2*float32(rng.Uint32()>>8)/(1<<24)-1)
		}
		size := quantizeRows(t.quant, vals[:r*rowLen], buf, r, rowLen)
		k, err := w.Write(buf[:size])
		written += int64(k)
		if t.written != nil {
			t.written.Add(int64(k))
		}
		if err != nil {
			return written, err
		}
		rows -= r
	}
	return written, nil
}

// WriteTiny writes the tiny shape in F32, without a chat template: the
// model the tests and the daemon's default use.
func WriteTiny(ctx context.Context, path string, seed uint64) error {
	s, err := LookupShape("tiny")
	if err != nil {
		return err
	}
	return Write(ctx, path, Options{Shape: s, DType: F32, Seed: seed})
}
