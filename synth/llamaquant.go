package synth

/*
#cgo CPPFLAGS: -I${SRCDIR}/../build/include/llama -I${SRCDIR}/../build/include/ggml
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// llamaFileTypeQ4_K_M is LLAMA_FTYPE_MOSTLY_Q4_K_M.
const llamaFileTypeQ4_K_M = C.LLAMA_FTYPE_MOSTLY_Q4_K_M

// llamaQuantize converts the GGUF at in to out with llama.cpp's own
// quantizer (llama_model_quantize, what llama-quantize runs), to fileType:
// its choice of type per tensor, fallbacks for rows whose length the
// type's block does not divide included. The headers come from the
// binding's module, linked under build/include by scripts/deps.sh.
func llamaQuantize(in, out string, fileType uint32) error {
	cin, cout := C.CString(in), C.CString(out)
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(cout))
	params := C.llama_model_quantize_default_params()
	params.nthread = C.int32_t(runtime.NumCPU())
	params.ftype = C.enum_llama_ftype(fileType)
	if rc := C.llama_model_quantize(cin, cout, &params); rc != 0 {
		return fmt.Errorf("llama_model_quantize %s: failed (%d; llama.cpp's log says why)", in, rc)
	}
	return nil
}
