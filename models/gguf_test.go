package models

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qwend/qwend/synth"
)

// ggufHeader builds a GGUF v3 header: counts, then what each adds.
type ggufHeader struct{ bytes.Buffer }

func (h *ggufHeader) u32(v uint32) *ggufHeader { binary.Write(h, binary.LittleEndian, v); return h }
func (h *ggufHeader) u64(v uint64) *ggufHeader { binary.Write(h, binary.LittleEndian, v); return h }
func (h *ggufHeader) str(s string) *ggufHeader { h.u64(uint64(len(s))); h.WriteString(s); return h }
func newHeader(version uint32, tensors, kvs uint64) *ggufHeader {
	h := &ggufHeader{}
	h.WriteString("GGUF")
	return h.u32(version).u64(tensors).u64(kvs)
}

// A header that claims more than its file holds is refused before
// Ollama's decoder allocates it: strings, arrays, pair and tensor counts,
// dimension counts; an alignment or a tensor type the decoder would divide
// by zero with; and an old version or no magic. A sound header passes.
func TestGGUFHeaderClaimsAreChecked(t *testing.T) {
	sound := newHeader(3, 1, 3)
	sound.str("general.architecture").u32(ggufTypeString).str("qwen2")
	sound.str("general.alignment").u32(4).u32(32)
	sound.str("tokenizer.ggml.tokens").u32(ggufTypeArray).u32(ggufTypeString).u64(2).str("a").str("b")
	sound.str("token_embd.weight").u32(2).u64(64).u64(1024).u32(0).u64(0)
	if err := checkGGUFHeader(bytes.NewReader(sound.Bytes()), int64(sound.Len())); err != nil {
		t.Fatalf("a sound header: %v", err)
	}
	for name, h := range map[string]*ggufHeader{
		"key of 1 TB":          newHeader(3, 0, 1).u64(1 << 40),
		"value string of 8 EB": newHeader(3, 0, 1).str("k").u32(ggufTypeString).u64(1 << 63),
		"2^60 pairs":           newHeader(3, 0, 1<<60),
		"2^40 tensors":         newHeader(3, 1<<40, 0),
		"array of 2^50 u64":    newHeader(3, 0, 1).str("k").u32(ggufTypeArray).u32(10).u64(1 << 50),
		"array of 2^40 strs":   newHeader(3, 0, 1).str("k").u32(ggufTypeArray).u32(ggufTypeString).u64(1 << 40),
		"nested array":         newHeader(3, 0, 1).str("k").u32(ggufTypeArray).u32(ggufTypeArray).u64(1),
		"unknown type":         newHeader(3, 0, 1).str("k").u32(99),
		"2^31 dimensions":      newHeader(3, 1, 0).str("t").u32(1 << 31),
		"alignment 0":          newHeader(3, 0, 1).str("general.alignment").u32(4).u32(0),
		"alignment 24":         newHeader(3, 0, 1).str("general.alignment").u32(4).u32(24),
		"alignment a string":   newHeader(3, 0, 1).str("general.alignment").u32(ggufTypeString).str("32"),
		"tensor type 200":      newHeader(3, 1, 0).str("t").u32(1).u64(4).u32(200).u64(0),
		"version 1":            newHeader(1, 0, 0),
		"truncated":            newHeader(3, 0, 1).str("k").u32(4),
	} {
		if err := checkGGUFHeader(bytes.NewReader(h.Bytes()), int64(h.Len())); !errors.Is(err, errGGUFHeader) {
			t.Errorf("%s: %v, want a malformed header", name, err)
		}
		path := filepath.Join(t.TempDir(), "bad.gguf")
		if err := os.WriteFile(path, h.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Inspect(path); !errors.Is(err, errGGUFHeader) {
			t.Errorf("%s: Inspect: %v", name, err)
		}
	}
	if err := checkGGUFHeader(bytes.NewReader([]byte("GGML....")), 8); !errors.Is(err, errGGUFHeader) {
		t.Errorf("no magic: %v", err)
	}
}

// go test -run '^$' -fuzz FuzzInspect ./models
//
// Any file, a mangled synthetic model among them, is inspected or refused
// with an error: no panic, and no allocation of what a header claims.
func FuzzInspect(f *testing.F) {
	path := filepath.Join(f.TempDir(), "tiny.gguf")
	if err := synth.WriteTiny(context.Background(), path, 1); err != nil {
		f.Fatal(err)
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(whole[:min(len(whole), 4096)]) // the header's start
	f.Add(newHeader(3, 1, 1).str("general.architecture").u32(ggufTypeString).str("qwen2").
		str("t").u32(2).u64(4).u64(4).u32(0).u64(0).Bytes())
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.gguf")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// an error is fine; a panic, a crash or a hang is not
		done := make(chan struct{})
		go func() {
			defer close(done)
			Inspect(p)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Inspect has not returned after 10 s on %d bytes", len(b))
		}
	})
}

// go test -run '^$' -fuzz FuzzOllamaBlob ./models
//
// Any model name against any manifest gives an error or a blob inside the
// store's blobs folder: neither the name nor the manifest's digest can
// reach a file elsewhere.
func FuzzOllamaBlob(f *testing.F) {
	f.Add("m", `{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:abc"}]}`)
	f.Add("m:latest", `{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:abc"}]}`)
	f.Add("../m", `{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:../../secret"}]}`)
	f.Add("h/n/m:t", `{"layers":[]}`)
	// one store, its manifest of m (m:latest) rewritten for each input
	store := f.TempDir()
	blobs := filepath.Join(store, "blobs")
	dir := filepath.Join(store, "manifests", "registry.ollama.ai", "library", "m")
	for _, d := range []string{blobs, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(blobs, "sha256-abc"), filepath.Join(store, "secret")} {
		if err := os.WriteFile(p, []byte("GGUF"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, name, manifest string) {
		if err := os.WriteFile(filepath.Join(dir, "latest"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := OllamaBlob(store, name)
		if err != nil {
			return
		}
		if rel, rerr := filepath.Rel(blobs, p); rerr != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) >= 2 && rel[:2] == ".." {
			t.Errorf("name %q, manifest %q: blob %q is outside %s", name, manifest, p, blobs)
		}
	})
}
