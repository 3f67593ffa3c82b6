package engine

import (
	"strings"
	"unicode/utf8"
)

// textBuffer holds generated text back until it can no longer be the start
// of a stop string or the middle of a UTF-8 character. When nothing is held
// back, a piece passes through without being copied.
//
// The text ends at the stop string that starts first in it, whatever the
// order of the list (on a tie, the longer one): the output is the text cut
// at the smallest index any stop string is found at, however the text was
// split into pieces.
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
	at, _ := firstStop(s, b.stops)
	// partial is where the earliest unfinished stop string starts: the
	// longest end of s that begins some stop string
	keep := 0
	for _, stop := range b.stops {
		for n := min(len(stop)-1, len(s)); n > keep; n-- {
			if strings.HasSuffix(s, stop[:n]) {
				keep = n
				break
			}
		}
	}
	partial := len(s) - keep
	if at >= 0 && at <= partial {
		// no stop string can start before this one any more
		b.pending = ""
		return s[:at], true
	}
	if at >= 0 {
		// one may still complete before it: wait for more text (at most
		// until the flush, which cuts at the one found)
		b.pending = s[partial:]
		return s[:partial], false
	}
	// an incomplete UTF-8 sequence at the end waits for its next bytes
	end := partial
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

// flush returns whatever is held back, cut at the first stop string in it
// (stopped is then true): no more text comes that could start earlier.
func (b *textBuffer) flush() (rest string, stopped bool) {
	s := b.pending
	b.pending = ""
	if at, _ := firstStop(s, b.stops); at >= 0 {
		return s[:at], true
	}
	return s, false
}

// firstStop returns where the stop string that starts first in s starts,
// and which one it is (the longer on a tie); -1 when s holds none. Empty
// stop strings are ignored.
func firstStop(s string, stops []string) (at int, stop string) {
	at = -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		hay := s
		if at >= 0 {
			// only a match starting at or before the best so far matters
			hay = s[:min(len(s), at+len(st))]
		}
		i := strings.Index(hay, st)
		if i < 0 {
			continue
		}
		if at < 0 || i < at || (i == at && len(st) > len(stop)) {
			at, stop = i, st
		}
	}
	return at, stop
}
