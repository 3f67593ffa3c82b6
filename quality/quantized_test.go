package quality

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ollama/ollama/fs/ggml"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/synth"
)

// Synthetic models in Q8_0 and Q4_0 (quantized by ggml) load in the engine
// and generate; their files are a quarter to an eighth of F32's matrices,
// and their greedy answers are deterministic like any other model's.
func TestQuantizedModelsGenerate(t *testing.T) {
	shape, err := synth.LookupShape("tiny")
	if err != nil {
		t.Fatal(err)
	}
	f32 := tinyModel(t)
	st, _ := os.Stat(f32)
	set, err := ParsePrompts([]byte("max_tokens: 16\nprompts:\n  - {name: c, prompt: 'int main(void) {'}\n  - {name: chat, messages: [{role: user, content: hi}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dtype    synth.DType
		fileType uint32
		kind     uint32
	}{{synth.Q8_0, 7, 8}, {synth.Q4_0, 2, 2}} {
		t.Run(string(c.dtype), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := synth.Write(context.Background(), path, synth.Options{Shape: shape, DType: c.dtype, Seed: 1}); err != nil {
				t.Fatal(err)
			}
			g := decodeGGUF(t, path)
			if got := g.KV().Uint("general.file_type"); got != c.fileType {
				t.Errorf("general.file_type %d, want %d", got, c.fileType)
			}
			for _, tn := range g.Tensors().Items() {
				want := uint32(0) // norms and biases stay F32
				if len(tn.Shape) == 2 {
					want = c.kind
				}
				if tn.Kind != want {
					t.Errorf("%s: type %d, want %d", tn.Name, tn.Kind, want)
				}
			}
			qs, _ := os.Stat(path)
			if qs.Size() >= st.Size()/3 {
				t.Errorf("%d bytes against F32's %d", qs.Size(), st.Size())
			}
			first, again := runTwice(t, path, set)
			produced := 0
			for i := range first {
				produced += len(first[i].TokenIDs)
				if first[i].OutputSHA256 != again[i].OutputSHA256 {
					t.Errorf("%s: %q then %q", first[i].Name, first[i].Output, again[i].Output)
				}
			}
			if produced == 0 {
				t.Error("no tokens generated")
			}
			t.Logf("%s: %d bytes (F32 %d), %q", c.dtype, qs.Size(), st.Size(), first[0].Output)
		})
	}
}

// Q4_K_M is made by llama.cpp's quantizer from the F16 model, with its
// mix of types: on a shape whose rows are multiples of 256, Q4_K for most
// matrices and Q6_K for some (attn_v and ffn_down of the first and last
// layers, the tied embedding as the output); norms and biases F32. The
// model loads and decodes deterministically.
func TestQ4KMModel(t *testing.T) {
	shape := synth.Shape{Name: "q4km-test", Embedding: 256, Blocks: 2, FeedForward: 512, Heads: 4, KVHeads: 2, Vocab: 1024,
		ContextLength: 2048, RopeFreqBase: 1e6, RMSNormEps: 1e-6, TiedEmbedding: true}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := synth.Write(context.Background(), path, synth.Options{Shape: shape, DType: synth.Q4_K_M, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	g := decodeGGUF(t, path)
	if got := g.KV().Uint("general.file_type"); got != 15 { // LLAMA_FTYPE_MOSTLY_Q4_K_M
		t.Errorf("general.file_type %d, want 15", got)
	}
	const q4K, q6K = 12, 14 // ggml types
	kinds := map[uint32]int{}
	for _, tn := range g.Tensors().Items() {
		kinds[tn.Kind]++
		if len(tn.Shape) == 1 && tn.Kind != 0 {
			t.Errorf("%s: a vector of type %d, want F32", tn.Name, tn.Kind)
		}
		if len(tn.Shape) == 2 && tn.Kind != q4K && tn.Kind != q6K {
			t.Errorf("%s: type %d, want Q4_K or Q6_K", tn.Name, tn.Kind)
		}
	}
	if kinds[q4K] == 0 || kinds[q6K] == 0 {
		t.Errorf("tensor types %v: want both Q4_K (%d) and Q6_K (%d)", kinds, q4K, q6K)
	}
	set, err := ParsePrompts([]byte("max_tokens: 12\nprompts:\n  - {name: c, prompt: 'int main(void) {'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	first, again := runTwice(t, path, set)
	if len(first[0].TokenIDs) == 0 || first[0].OutputSHA256 != again[0].OutputSHA256 {
		t.Errorf("%q then %q", first[0].Output, again[0].Output)
	}
	t.Logf("types %v, %q", kinds, first[0].Output)
}

// decodeGGUF reads path's header and tensor list.
func decodeGGUF(t *testing.T, path string) *ggml.GGML {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := ggml.Decode(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// runTwice answers set twice on the model at path, one slot: the results
// of both runs.
func runTwice(t *testing.T, path string, set *PromptSet) (first, again []Result) {
	t.Helper()
	e := newEngine(t, path, engine.Config{Parallel: 1, ContextPerSlot: 256})
	var err error
	if first, err = Run(context.Background(), e, set, 0); err != nil {
		t.Fatal(err)
	}
	if again, err = Run(context.Background(), e, set, 0); err != nil {
		t.Fatal(err)
	}
	return first, again
}
