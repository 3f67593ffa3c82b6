package synth

/*
#include <stddef.h>
#include <stdint.h>
size_t ggml_quantize_chunk(int type, const float * src, void * dst, int64_t start, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t ggml_row_size(int type, int64_t ne);
*/
import "C"

import (
	"unsafe"

	// links ggml, whose quantizers these are
	_ "github.com/ollama/ollama/llama"
)

// ggml tensor types and llama.cpp file types of the quantized dtypes.
const (
	ggmlTypeQ4_0 = 2
	ggmlTypeQ8_0 = 8

	fileTypeQ4_0 = 2 // LLAMA_FTYPE_MOSTLY_Q4_0
	fileTypeQ8_0 = 7 // LLAMA_FTYPE_MOSTLY_Q8_0
)

// quantizeRows quantizes nrows rows of rowLen values with ggml's own
// quantizer (the one llama.cpp's quantize tool runs) into dst, which must
// hold quantizedSize(typ, rowLen)*nrows bytes; it returns the bytes
// written.
func quantizeRows(typ int, src []float32, dst []byte, nrows, rowLen int) int {
	return int(C.ggml_quantize_chunk(C.int(typ), (*C.float)(unsafe.Pointer(&src[0])), unsafe.Pointer(&dst[0]),
		0, C.int64_t(nrows), C.int64_t(rowLen), nil))
}

// quantizedRowSize is the bytes of one row of n values.
func quantizedRowSize(typ, n int) int { return int(C.ggml_row_size(C.int(typ), C.int64_t(n))) }
