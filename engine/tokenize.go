package engine

import (
	"unicode"
	"unicode/utf8"
)

// maxRun is the longest run of characters of one class (letters, numbers,
// whitespace, everything else) that one llama_tokenize call sees, in runes.
//
// llama.cpp has no hand-written splitter for the Qwen2 pre-tokenizer's
// regular expression and falls back to std::regex, whose matcher recurses
// once per character of a match: on an 8 MiB thread stack one match of
// about 26,200 characters overflows it (measured here: letters, spaces,
// newlines, '!', 'é' and '漢' all crash between 26,131 and 26,326) and kills
// the process. A match never spans more than two runs and one character
// (" !!!\n\n" is one match), so at 1024 the deepest match is 2049
// characters, under a tenth of the crash point, leaving room for smaller
// thread stacks; and prose and code rarely have a run that long, so for
// them nothing changes. It is not smaller because every extra call costs
// about a millisecond (llama.cpp compiles the regular expression on each).
const maxRun = 1024

// runClass is what splitRuns counts runs of.
type runClass uint8

const (
	runNone   runClass = iota // no run yet, or one of runAny units only
	runLetter                 // \p{L}
	runNumber                 // \p{N}
	runSpace                  // \s, newlines included
	runOther                  // punctuation, symbols, marks, controls
	// runAny is an invalid UTF-8 byte or a code point unassigned in Go's
	// Unicode tables. llama.cpp may read either as a letter (it decodes
	// overlong sequences, and its tables know CJK Extension I, Unicode
	// 15.1), so it counts in the run before it and in the one after it.
	runAny
)

var asciiClass = func() (c [utf8.RuneSelf]runClass) {
	for b := range c {
		switch r := rune(b); {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
			c[b] = runLetter
		case '0' <= r && r <= '9':
			c[b] = runNumber
		case unicode.IsSpace(r):
			c[b] = runSpace
		default:
			c[b] = runOther
		}
	}
	return c
}()

// classAt classifies the character at s[i] and returns its length in bytes.
func classAt(s string, i int) (runClass, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return runAny, 1
	case unicode.IsLetter(r):
		return runLetter, size
	case unicode.IsNumber(r):
		return runNumber, size
	case unicode.IsSpace(r):
		return runSpace, size
	case unicode.In(r, unicode.M, unicode.P, unicode.S, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs):
		return runOther, size
	}
	return runAny, size // unassigned (Cn)
}

// splitRuns cuts text so that no piece holds a run of more than limit
// characters of one class, and returns the pieces, which concatenate to
// text; it returns nil, allocating nothing, when text has no such run.
// A run longer than limit is cut after every limit characters, counted
// from its start; one character earlier where that character is '<', so
// that a special token such as <|im_start|> or </tool_call> is never cut
// (Qwen's special tokens begin with '<' and change class after at most
// two characters). Cuts fall only between characters of one class, so
// never inside a UTF-8 sequence. limit must be at least 2.
func splitRuns(text string, limit int) []string {
	var pieces []string
	start := 0     // where the current piece begins
	run := runNone // the class of the current run
	n := 0         // characters of the current run in the current piece
	w := 0         // runAny characters just before i in the current piece
	for i := 0; i < len(text); {
		c, size := classAt(text, i)
		if c != runAny && c != run {
			// the runAny characters before c may belong to its run
			run, n = c, w
		}
		if n == limit {
			cut := i
			if text[i-1] == '<' {
				cut--
			}
			pieces = append(pieces, text[start:cut])
			start, n, w = cut, i-cut, 0
		}
		n++
		if c == runAny {
			w++
		} else {
			w = 0
		}
		i += size
	}
	if pieces == nil {
		return nil
	}
	return append(pieces, text[start:])
}
