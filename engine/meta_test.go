package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/qwend/qwend/synth"
)

// Info carries the GGUF's chat template, and "" for a model without one.
func TestInfoChatTemplate(t *testing.T) {
	if got := newEngine(t, Config{Parallel: 1}).Info().ChatTemplate; got != "" {
		t.Errorf("tiny model without a template: ChatTemplate %q", got)
	}
	src, err := os.ReadFile("../chat/testdata/templates/qwen2.5-coder-instruct.jinja")
	if err != nil {
		t.Fatal(err)
	}
	shape, err := synth.LookupShape("tiny")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "templated.gguf")
	if err := synth.Write(context.Background(), path, synth.Options{Shape: shape, DType: synth.F32, Seed: 1, ChatTemplate: string(src)}); err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{ModelPath: path, ModelName: "templated", Parallel: 1, ContextPerSlot: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Info().ChatTemplate; got != string(src) {
		t.Errorf("ChatTemplate %d bytes, want the %d bytes written", len(got), len(src))
	}
}
