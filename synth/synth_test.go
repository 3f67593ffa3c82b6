package synth

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ollama/ollama/fs/ggml"
)

func write(t *testing.T, shape string, dtype DType, seed uint64) []byte {
	t.Helper()
	s, err := LookupShape(shape)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	var calls int
	if err := Write(context.Background(), path, Options{Shape: s, DType: dtype, Seed: seed, Progress: func(done, total int64) {
		calls++
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("no progress reported")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSameSeedSameBytes(t *testing.T) {
	a, b := write(t, "tiny", F16, 7), write(t, "tiny", F16, 7)
	if !bytes.Equal(a, b) {
		t.Fatal("same shape, dtype and seed gave different files")
	}
	if c := write(t, "tiny", F16, 8); bytes.Equal(a, c) {
		t.Fatal("another seed gave the same file")
	}
	f32 := write(t, "tiny", F32, 7)
	if len(f32) <= len(a) {
		t.Errorf("f32 file %d bytes, f16 %d", len(f32), len(a))
	}
	if !bytes.HasPrefix(a, []byte("GGUF")) {
		t.Error("no GGUF magic")
	}
	for _, want := range append([]string{"qwen2.attention.head_count_kv"}, SpecialTokens...) {
		if !bytes.Contains(a, []byte(want)) {
			t.Errorf("file lacks %q", want)
		}
	}
	if bytes.Contains(a, []byte("tokenizer.chat_template")) {
		t.Error("a chat template written without Options.ChatTemplate")
	}
}

func TestChatTemplateOption(t *testing.T) {
	s, err := LookupShape("tiny")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	const tmpl = "{{ messages[0]['content'] }} custom template"
	if err := Write(context.Background(), path, Options{Shape: s, DType: F32, ChatTemplate: tmpl}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := ggml.Decode(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.KV().ChatTemplate(); got != tmpl {
		t.Errorf("tokenizer.chat_template %q, want %q", got, tmpl)
	}
}

func TestShapesMatchTheRealModels(t *testing.T) {
	// parameter counts of the published Qwen2.5-Coder models
	for name, want := range map[string]float64{"qwen2.5-coder-0.5b": 0.494e9, "qwen2.5-coder-1.5b": 1.544e9, "qwen2.5-coder-7b": 7.616e9} {
		s, err := LookupShape(name)
		if err != nil {
			t.Fatal(err)
		}
		got := float64(s.ParameterCount())
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("%s: %.3fB parameters, the real model has %.3fB", name, got/1e9, want/1e9)
		}
	}
	if _, err := LookupShape("qwen9"); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("unknown shape error %v should list the known ones", err)
	}
}

func TestVocabulary(t *testing.T) {
	v := buildVocabulary(151936)
	if len(v.tokens) != 151936 || len(v.types) != len(v.tokens) {
		t.Fatalf("%d tokens, %d types", len(v.tokens), len(v.types))
	}
	seen := map[string]bool{}
	for _, tok := range v.tokens {
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
	for _, m := range v.merges {
		parts := strings.SplitN(m, " ", 2)
		if !seen[parts[0]] || !seen[parts[1]] || !seen[parts[0]+parts[1]] {
			t.Fatalf("merge %q names a token not in the vocabulary", m)
		}
	}
	if v.tokens[v.eos] != "<|endoftext|>" || v.types[v.eos] != tokenTypeControl {
		t.Errorf("eos %d is %q", v.eos, v.tokens[v.eos])
	}
}

func TestCancelLeavesNoFile(t *testing.T) {
	s, _ := LookupShape("qwen2.5-coder-0.5b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if err := Write(ctx, filepath.Join(dir, "m.gguf"), Options{Shape: s, Seed: 1}); err == nil {
		t.Fatal("cancelled write succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}
