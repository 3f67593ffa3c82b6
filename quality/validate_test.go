package quality

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/synth"
)

func TestDefaultPrompts(t *testing.T) {
	s := DefaultPrompts()
	kinds := map[string]int{}
	for _, p := range s.Prompts {
		kinds[p.Kind()]++
		if p.MaxTokens < 1 {
			t.Errorf("%s: max_tokens %d", p.Name, p.MaxTokens)
		}
	}
	if len(s.Prompts) < 8 || kinds["chat"] == 0 || kinds["fim"] == 0 || kinds["completion"] == 0 {
		t.Errorf("%d prompts by kind %v: want chats, fill-in-the-middle and completions", len(s.Prompts), kinds)
	}
	if s.SHA256() != DefaultPrompts().SHA256() {
		t.Error("the set's hash is not stable")
	}
}

func TestParsePromptsRejects(t *testing.T) {
	for name, src := range map[string]string{
		"no prompts":     "max_tokens: 8\n",
		"repeated name":  "prompts: [{name: a, prompt: x}, {name: a, prompt: y}]",
		"two kinds":      "prompts: [{name: a, prompt: x, prefix: y}]",
		"no kind":        "prompts: [{name: a}]",
		"unknown role":   "prompts: [{name: a, messages: [{role: robot, content: x}]}]",
		"unknown field":  "prompts: [{name: a, prompt: x, temperature: 1}]",
		"negative limit": "prompts: [{name: a, prompt: x, max_tokens: -1}]",
	} {
		if _, err := ParsePrompts([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := ParsePrompts([]byte(`{"max_tokens": 5, "prompts": [{"name": "j", "prompt": "x"}, {"name": "k", "prompt": "y", "max_tokens": 2}]}`))
	if err != nil || s.Prompts[0].MaxTokens != 5 || s.Prompts[1].MaxTokens != 2 {
		t.Errorf("JSON prompt set: %+v %v", s, err)
	}
}

// testEngine is a one-slot engine on the tiny model: with Qwen2.5's
// vocabulary when its tokenizer is installed, else the small one.
func testEngine(t *testing.T, cfg engine.Config) *engine.Engine {
	t.Helper()
	cfg.Parallel = 1
	if synth.FindTokenizer() != "" {
		path, _ := qwenModel(t)
		return newEngine(t, path, cfg)
	}
	return newEngine(t, tinyModel(t), cfg)
}

// A prompt's answer does not depend on what ran before it: each is decoded
// from an empty KV cache, so the set in reverse order gives the same
// tokens, and a second run the same again.
func TestRunIsDeterministicAndOrderIndependent(t *testing.T) {
	e := testEngine(t, engine.Config{ContextPerSlot: 1024})
	set := DefaultPrompts()
	for i := range set.Prompts {
		set.Prompts[i].MaxTokens = 12
	}
	first, err := Run(context.Background(), e, set, 0)
	if err != nil {
		t.Fatal(err)
	}
	reversed := &PromptSet{MaxTokens: set.MaxTokens, Prompts: slices.Clone(set.Prompts)}
	slices.Reverse(reversed.Prompts)
	second, err := Run(context.Background(), e, reversed, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(second)
	produced := 0
	for i, r := range first {
		s := second[i]
		if r.Name != s.Name || !slices.Equal(r.TokenIDs, s.TokenIDs) || r.Output != s.Output || r.PromptSHA256 != s.PromptSHA256 {
			t.Errorf("%s: %v then %v (%q, %q)", r.Name, r.TokenIDs, s.TokenIDs, r.Output, s.Output)
		}
		if r.OutputSHA256 != sha256Hex([]byte(r.Output)) || r.PromptTokens == 0 {
			t.Errorf("%s: output hash or prompt count wrong: %+v", r.Name, r)
		}
		produced += len(r.TokenIDs)
	}
	if produced == 0 {
		t.Fatal("no prompt produced a token")
	}
}

func baselineOf(results ...Result) *Baseline {
	return &Baseline{
		LlamaBuild: "b1", QwendVersion: "v1",
		Model:    Model{Path: "m.gguf", SHA256: strings.Repeat("ab", 32), Size: 10, Fingerprint: "fp_1", Backend: "cpu"},
		Settings: Settings{Slots: 1, ContextPerSlot: 4096, BatchSize: 512, FlashAttention: "auto", KVCacheType: "f16", GPULayers: -1},
		Results:  results,
	}
}

func TestCompare(t *testing.T) {
	a := Result{Name: "a", PromptSHA256: "p", Output: "func main() { fmt.Println(1) }", TokenIDs: []int{1, 2, 3, 4, 5, 6}}
	b := Result{Name: "b", PromptSHA256: "q", Output: "SELECT 1", TokenIDs: []int{7, 8}}
	base := baselineOf(a, b)

	r, err := Compare(base, baselineOf(a, b))
	if err != nil || !r.OK() || r.Matched != 2 {
		t.Fatalf("the same run: %+v %v", r, err)
	}

	// a token differs at index 3: reported with both ids and the texts
	// from where they part
	changed := a
	changed.TokenIDs = []int{1, 2, 3, 9, 5}
	changed.Output = "func main() { fmt.Print(1) }"
	r, err = Compare(base, baselineOf(changed, b))
	if err != nil || r.OK() || r.Differed != 1 || r.Matched != 1 {
		t.Fatalf("a changed answer: %+v %v", r, err)
	}
	p := r.Prompts[0]
	if p.Match || p.FirstDivergingToken != 3 || *p.ExpectedTokenID != 4 || *p.GotTokenID != 9 || p.ExpectedTokens != 6 || p.GotTokens != 5 {
		t.Errorf("divergence %+v", p)
	}
	if !strings.Contains(p.Expected, "fmt.Print⟦ln(1)") || !strings.Contains(p.Got, "fmt.Print⟦(1)") {
		t.Errorf("texts around the divergence: %q, %q", p.Expected, p.Got)
	}

	// an answer cut short diverges where it ends
	short := a
	short.TokenIDs = a.TokenIDs[:4]
	r, _ = Compare(base, baselineOf(short, b))
	if p := r.Prompts[0]; p.FirstDivergingToken != 4 || p.GotTokenID != nil || *p.ExpectedTokenID != 5 {
		t.Errorf("a shorter answer: %+v", p)
	}

	// the same answer to a prompt tokenized otherwise is a difference
	retokenized := a
	retokenized.PromptSHA256 = "other"
	if r, _ := Compare(base, baselineOf(retokenized, b)); r.OK() || !r.Prompts[0].PromptDiffers {
		t.Errorf("another prompt tokenization: %+v", r.Prompts[0])
	}

	// prompts added to or missing from the set
	r, _ = Compare(base, baselineOf(a, Result{Name: "c", TokenIDs: []int{1}}))
	var missing, extra int
	for _, p := range r.Prompts {
		if p.Missing {
			missing++
		}
		if p.Extra {
			extra++
		}
	}
	if r.OK() || missing != 1 || extra != 1 {
		t.Errorf("a renamed prompt: %+v", r.Prompts)
	}

	// another model: nothing to compare
	other := baselineOf(a, b)
	other.Model.SHA256 = strings.Repeat("cd", 32)
	if _, err := Compare(base, other); !errors.Is(err, ErrModelDiffers) || !strings.Contains(err.Error(), "--update") {
		t.Errorf("another model: %v", err)
	}

	// another setting: named, and the run fails even though the answers match
	kv := baselineOf(a, b)
	kv.Settings.KVCacheType, kv.Model.Fingerprint = "q8_0", "fp_2"
	r, _ = Compare(base, kv)
	if r.OK() || !slices.Equal(r.SettingsDiffer, []string{"kv_cache_type: f16 -> q8_0"}) || r.Matched != 2 {
		t.Errorf("another setting: %+v", r)
	}

	// another CPU or build (the fingerprint alone): a note, not a failure
	env := baselineOf(a, b)
	env.Model.Fingerprint, env.LlamaBuild = "fp_3", "b2"
	r, _ = Compare(base, env)
	if !r.OK() || len(r.Notes) != 2 {
		t.Errorf("another environment: %+v", r)
	}

	// a run without token ids (through the API) is compared as text
	text := a
	text.TokenIDs, text.Output = nil, "func main() { fmt.Println(2) }"
	r, _ = Compare(base, baselineOf(text, b))
	if p := r.Prompts[0]; r.OK() || p.DivergingAt == nil || *p.DivergingAt != 26 {
		t.Errorf("a text comparison: %+v", p)
	}
}

// A changed model or setting is caught end to end: a baseline written by
// Run under one KV cache type, compared with runs under another and with
// another model's.
func TestValidateDetectsChangedSetting(t *testing.T) {
	set, err := ParsePrompts([]byte("max_tokens: 16\nprompts:\n  - {name: go, messages: [{role: user, content: Write fizzbuzz in Go.}]}\n  - {name: c, prompt: 'int main(void) {'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(batch int) *Baseline {
		e := testEngine(t, engine.Config{ContextPerSlot: 512, BatchSize: batch})
		res, err := Run(context.Background(), e, set, 0)
		if err != nil {
			t.Fatal(err)
		}
		sum, size, err := FileSHA256(e.Info().Path)
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		return &Baseline{Model: Model{Path: e.Info().Path, SHA256: sum, Size: size, Fingerprint: e.Info().Fingerprint},
			Settings: Settings{Slots: 1, ContextPerSlot: 512, BatchSize: batch}, PromptsSHA256: set.SHA256(), Results: res}
	}
	base := run(512)
	r, err := Compare(base, run(512))
	if err != nil || !r.OK() {
		t.Fatalf("the same model and settings: %+v %v", r, err)
	}
	// one prompt token per step: other matrix shapes
	r, err = Compare(base, run(1))
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !slices.Contains(r.SettingsDiffer, "batch_size: 512 -> 1") {
		t.Errorf("batch size 1 against a baseline at 512: %+v", r)
	}
	t.Logf("batch size 1: %d of %d answers differ", r.Differed, len(r.Prompts))

	// another model file (another seed): nothing compared
	other := filepath.Join(t.TempDir(), "other.gguf")
	if err := synth.WriteTiny(context.Background(), other, 2); err != nil {
		t.Fatal(err)
	}
	sum, _, err := FileSHA256(other)
	if err != nil {
		t.Fatal(err)
	}
	changed := *base
	changed.Model.SHA256 = sum
	if _, err := Compare(base, &changed); !errors.Is(err, ErrModelDiffers) {
		t.Errorf("another model file: %v", err)
	}
}
