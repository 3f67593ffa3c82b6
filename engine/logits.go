package engine

/*
#include <stdint.h>
struct llama_context;
float * llama_get_logits_ith(struct llama_context * ctx, int32_t i);
*/
import "C"

import (
	"unsafe"

	"github.com/ollama/ollama/llama"
)

// logitsView returns the i-th logits row of the last decode without copying
// it (the binding's GetLogitsIth copies the whole vocabulary row on every
// call). The slice is valid until the next Decode and is only touched by the
// scheduler goroutine or the sampling workers it waits for.
//
// The binding keeps the C context as the first field of llama.Context; this
// reads it there. The pinned module version (go.mod) fixes that layout, and
// TestLogitsViewMatchesBinding checks it against the binding's own copy.
func logitsView(ctx *llama.Context, i, nVocab int) []float32 {
	c := *(**C.struct_llama_context)(unsafe.Pointer(ctx))
	p := C.llama_get_logits_ith(c, C.int32_t(i))
	if p == nil {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), nVocab)
}
