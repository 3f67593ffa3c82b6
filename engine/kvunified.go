package engine

/*
#cgo CPPFLAGS: -I${SRCDIR}/../build/include/llama -I${SRCDIR}/../build/include/ggml
#include "llama.h"
*/
import "C"

import (
	"unsafe"

	"github.com/ollama/ollama/llama"
)

// setKVUnified sets llama_context_params.kv_unified in p: one KV buffer
// that every sequence draws its cells from, instead of n_seq_max streams
// of n_ctx/n_seq_max cells each. The binding does not expose the field;
// its ContextParams holds exactly one llama_context_params (llama.h of the
// binding's module, linked under build/include by scripts/deps.sh), which
// this writes through. TestKVUnifiedSharesThePool shows the effect.
func setKVUnified(p *llama.ContextParams, on bool) {
	c := (*C.struct_llama_context_params)(unsafe.Pointer(p))
	c.kv_unified = C.bool(on)
}

// sizeofContextParams is the C struct's size, which ContextParams's must
// equal for setKVUnified to be sound (checked at start).
const sizeofContextParams = C.sizeof_struct_llama_context_params
