package engine

/*
#include <stddef.h>
struct ggml_backend_device;
extern char const * LLAMA_COMMIT;
const char * llama_print_system_info(void);
size_t ggml_backend_dev_count(void);
struct ggml_backend_device * ggml_backend_dev_get(size_t index);
const char * ggml_backend_dev_description(struct ggml_backend_device * device);
int ggml_backend_dev_type(struct ggml_backend_device * device);
*/
import "C"

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

// BindingVersion is the version of github.com/ollama/ollama, the module
// whose llama.cpp qwend runs; go.mod pins it (a test checks they agree).
const BindingVersion = "v0.24.0"

// LlamaBuild names the llama.cpp qwend is built with: the binding's module
// version and the llama.cpp commit it pins, e.g. "ollama v0.24.0, llama.cpp
// ec98e2002".
func LlamaBuild() string {
	return fmt.Sprintf("ollama %s, llama.cpp %s", BindingVersion, C.GoString(C.LLAMA_COMMIT))
}

// fingerprint is a short hash of what decides the logits a request is
// sampled from, besides the batches it shares: the model file (its size,
// first and last MiB), the llama.cpp build, the CPU features and GPUs
// ggml computes with, and the settings that change the arithmetic (slots,
// context per slot, batch size, flash attention, KV cache type, GPU
// layers). Equal fingerprints and an equal request give equal logits when
// the request is decoded alone; see the README's seed contract.
func fingerprint(cfg Config, gpuLayers int) (string, error) {
	h := sha256.New()
	if err := hashFileIdentity(h, cfg.ModelPath); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "\x00%s\x00%s\x00", LlamaBuild(), C.GoString(C.llama_print_system_info()))
	if gpuLayers > 0 {
		for i := range C.ggml_backend_dev_count() {
			d := C.ggml_backend_dev_get(i)
			if t := C.ggml_backend_dev_type(d); t == 1 || t == 2 { // GPU, integrated GPU
				fmt.Fprintf(h, "gpu %s\x00", C.GoString(C.ggml_backend_dev_description(d)))
			}
		}
	}
	fmt.Fprintf(h, "parallel=%d ctx=%d batch=%d fa=%s kv=%s gpu_layers=%d",
		cfg.Parallel, cfg.ContextPerSlot, cfg.BatchSize, cfg.FlashAttention, cfg.KVCacheType, gpuLayers)
	return "fp_" + hex.EncodeToString(h.Sum(nil))[:10], nil
}

// hashFileIdentity writes the file's size and its first and last MiB to h:
// the header (metadata, tensor layout) and enough weights to tell two
// files apart without reading gigabytes.
func hashFileIdentity(h hash.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const chunk = 1 << 20
	fmt.Fprintf(h, "size=%d\x00", st.Size())
	if _, err := io.Copy(h, io.LimitReader(f, chunk)); err != nil {
		return err
	}
	if st.Size() > chunk {
		if _, err := f.Seek(max(chunk, st.Size()-chunk), io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
	}
	return nil
}
