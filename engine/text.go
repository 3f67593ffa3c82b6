package engine

import (
	"strings"
	"unicode/utf8"
)

// textBuffer holds generated text back until it can no longer be the start
// of a stop string or the middle of a UTF-8 character. When nothing is held
// back, a piece passes through without being copied.
type textBuffer struct {
	stops   []string
	pending string
}

// push adds a piece and returns the text safe to emit, and whether a stop
// string was found (the text is then cut before it).
func (b *textBuffer) push(piece string) (out string, stopped bool) {
	s := piece
	if b.pending != "" {
		s = b.pending + piece
	}
	for _, stop := range b.stops {
		if i := strings.Index(s, stop); i >= 0 {
			b.pending = ""
			return s[:i], true
		}
	}
	keep := 0
	for _, stop := range b.stops {
		for n := min(len(stop)-1, len(s)); n > keep; n-- {
			if strings.HasSuffix(s, stop[:n]) {
				keep = n
				break
			}
		}
	}
	// an incomplete UTF-8 sequence at the end waits for its next bytes
	end := len(s) - keep
	for i := end - 1; i >= 0 && i >= end-3; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:end]) {
				keep += end - i
			}
			break
		}
	}
	if keep >= len(s) {
		b.pending = s
		return "", false
	}
	b.pending = s[len(s)-keep:]
	return s[:len(s)-keep], false
}

// flush returns whatever is held back.
func (b *textBuffer) flush() string {
	s := b.pending
	b.pending = ""
	return s
}
