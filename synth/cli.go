package synth

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Command is qwend synth: it writes a synthetic model with the shape,
// weight type, seed and (optionally) tokenizer its flags name, with its
// progress on stderr.
func Command(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	shapeName := fs.String("shape", "tiny", "model shape: "+strings.Join(Shapes(), ", "))
	out := fs.String("out", "", "output GGUF path (required)")
	dtype := fs.String("dtype", "f16", "weight type: f16, f32, q8_0 or q4_0 (quantized by ggml), or q4_k_m (llama.cpp's mix, by its quantizer)")
	seed := fs.Uint64("seed", 1, "random seed; the same seed gives the same bytes")
	tokenizer := fs.String("tokenizer", "", "a Hugging Face tokenizer.json with Qwen2.5's vocabulary (scripts/deps.sh installs one at "+
		TokenizerPath+"): the model gets that vocabulary, Qwen2.5's special tokens and ids, and Qwen2.5-Coder-Instruct's chat template")
	contextLength := fs.Int("context-length", 0, "trained context in tokens written as qwen2.context_length (0: the shape's own); "+
		"a long-context variant of a shape: only that metadata changes, not the weights")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	shape, err := LookupShape(*shapeName)
	if err != nil {
		return fmt.Errorf("--shape: %w", err)
	}
	switch {
	case *contextLength < 0 || *contextLength > math.MaxInt32:
		return fmt.Errorf("--context-length %d: not in [0, %d]", *contextLength, math.MaxInt32)
	case *contextLength > 0:
		shape.ContextLength = *contextLength
	}
	dt, err := ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	// the ChatML template, so that Ollama (scripts/bench.sh) prompts it as qwend does
	opts := Options{Shape: shape, DType: dt, Seed: *seed, ChatTemplate: ChatTemplate}
	if *tokenizer != "" {
		if opts.Tokenizer, err = LoadTokenizer(*tokenizer); err != nil {
			return fmt.Errorf("--tokenizer: %w", err)
		}
		opts.ChatTemplate = QwenCoderChatTemplate
	}
	start := time.Now()
	fmt.Fprintf(stderr, "synth: %s (%d parameters, %s) -> %s\n", shape.Name, opts.ParameterCount(), dt, *out)
	opts.Progress = func(done, total int64) {
		fmt.Fprintf(stderr, "synth: %5.1f%% %s of %s\n", 100*float64(done)/float64(max(total, 1)), humanize.IBytes(uint64(done)), humanize.IBytes(uint64(total)))
	}
	if err := Write(ctx, *out, opts); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "synth: done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
