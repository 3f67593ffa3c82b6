package engine

/*
#include <stdbool.h>
#include <stdint.h>
struct llama_vocab;
bool llama_vocab_is_control(const struct llama_vocab * vocab, int32_t token);
*/
import "C"

import (
	"unsafe"

	"github.com/ollama/ollama/llama"
)

// endTokens marks the tokens that end a generation instead of becoming
// text: the end-of-generation tokens the GGUF marks (for Qwen2.5
// <|endoftext|>, <|im_end|>, and the FIM and repository end tokens) and
// every other control token (<|im_start|>, <|fim_middle|>, ...), whose text
// is markup, never output. User-defined tokens such as <tool_call> are
// text.
func endTokens(m *llama.Model, n int) []bool {
	vocab := (*C.struct_llama_vocab)(unsafe.Pointer(m.Vocab()))
	ends := make([]bool, n)
	for tok := range ends {
		ends[tok] = m.TokenIsEog(tok) || bool(C.llama_vocab_is_control(vocab, C.int32_t(tok)))
	}
	return ends
}
