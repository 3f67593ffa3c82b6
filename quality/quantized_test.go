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
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ggml.Decode(f, 0)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
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
			e := newEngine(t, path, engine.Config{Parallel: 1, ContextPerSlot: 256})
			first, err := Run(context.Background(), e, set, 0)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Run(context.Background(), e, set, 0)
			if err != nil {
				t.Fatal(err)
			}
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
