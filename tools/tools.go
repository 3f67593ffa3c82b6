//go:build tools

// Package tools pins modules the build needs but no Go code imports:
// malgo ships miniaudio.h, which the llama.cpp binding's sources include
// and the module proxy's archive of ollama omits.
package tools

import _ "github.com/gen2brain/malgo"
