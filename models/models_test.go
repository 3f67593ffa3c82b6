package models

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwend/qwend/synth"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOllamaNameResolution(t *testing.T) {
	store := t.TempDir()
	writeFile(t, store+"/manifests/registry.ollama.ai/library/qwen2.5-coder/1.5b",
		`{"layers":[{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:aaa"},{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:bbb"}]}`)
	writeFile(t, store+"/blobs/sha256-bbb", "GGUF")
	got, err := OllamaBlob(store, "qwen2.5-coder:1.5b")
	if err != nil || !strings.HasSuffix(got, "blobs/sha256-bbb") {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"qwen2.5-coder:7b", "../../etc:passwd", "a/b/c/d", "x/..:1", ":"} {
		if _, err := OllamaBlob(store, bad); err == nil {
			t.Errorf("%q resolved", bad)
		}
	}
}

func TestManifestDigestCannotLeaveTheStore(t *testing.T) {
	store := t.TempDir()
	writeFile(t, filepath.Join(store, "secret"), "GGUF")
	for i, digest := range []string{"sha256:../../secret", "sha256:..", "sha256:a/../../secret", "md5:abc", "sha256:ABC", ""} {
		tag := string(rune('a' + i))
		writeFile(t, store+"/manifests/registry.ollama.ai/library/m/"+tag,
			`{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"`+digest+`"}]}`)
		if p, err := OllamaBlob(store, "m:"+tag); err == nil || !strings.Contains(err.Error(), "bad digest") {
			t.Errorf("digest %q: got %q, %v", digest, p, err)
		}
	}
}

func TestResolve(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	gguf := filepath.Join(dir, "my-model.gguf")
	writeFile(t, gguf, "GGUF")
	r, err := Resolve(context.Background(), Options{Model: gguf}, log)
	if err != nil || r.Path != gguf || r.Name != "my-model" || r.Synthetic {
		t.Errorf("path: %+v %v", r, err)
	}
	r, err = Resolve(context.Background(), Options{Model: gguf, Name: "served"}, log)
	if err != nil || r.Name != "served" {
		t.Errorf("named: %+v %v", r, err)
	}
	for _, bad := range []string{filepath.Join(dir, "missing.gguf"), dir} {
		if _, err := Resolve(context.Background(), Options{Model: bad}, log); !errors.Is(err, ErrModel) {
			t.Errorf("%s: %v, want ErrModel", bad, err)
		}
	}
	if _, err := Resolve(context.Background(), Options{Model: "nothere:1b", OllamaStore: dir}, log); !errors.Is(err, ErrModel) {
		t.Errorf("missing ollama name: %v", err)
	}
	blocked := filepath.Join(dir, "file")
	writeFile(t, blocked, "x")
	if _, err := Resolve(context.Background(), Options{CacheDir: filepath.Join(blocked, "sub")}, log); !errors.Is(err, ErrCacheDir) {
		t.Errorf("unusable cache dir: %v", err)
	}
}

func TestResolveDefaultWritesTheSyntheticModelOnce(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	r, err := Resolve(context.Background(), Options{CacheDir: dir}, log)
	if err != nil || !r.Synthetic || r.Name != DefaultName {
		t.Fatalf("%+v %v", r, err)
	}
	st1, err := os.Stat(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Resolve(context.Background(), Options{CacheDir: dir}, log)
	if err != nil || r2.Path != r.Path {
		t.Fatalf("%+v %v", r2, err)
	}
	st2, _ := os.Stat(r2.Path)
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("the default model was written again")
	}
}

// The default model carries Qwen2.5's vocabulary and chat template when
// its tokenizer.json is installed, and the small vocabulary without it.
func TestResolveDefaultVocabulary(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv(synth.TokenizerEnv, "none")
	r, err := Resolve(context.Background(), Options{CacheDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(r.Path) != "synthetic-tiny-f32-seed1.gguf" {
		t.Errorf("without a tokenizer: %s", r.Path)
	}
	if meta, err := Inspect(r.Path); err != nil || meta.ChatTemplate != "" {
		t.Errorf("without a tokenizer: template %q, %v", meta.ChatTemplate, err)
	}
	t.Setenv(synth.TokenizerEnv, "")
	if synth.FindTokenizer() == "" {
		t.Skip("no Qwen2.5 tokenizer.json installed (scripts/deps.sh)")
	}
	r, err = Resolve(context.Background(), Options{CacheDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(filepath.Base(r.Path), "qwen2.5-vocab") {
		t.Errorf("with the tokenizer: %s", r.Path)
	}
	if meta, err := Inspect(r.Path); err != nil || meta.ChatTemplate != synth.QwenCoderChatTemplate {
		t.Errorf("with the tokenizer: not Qwen2.5-Coder's template (%v)", err)
	}
}
