package engine

import (
	"strings"
	"testing"
)

func TestTextBufferHoldsBackStopPrefixesAndPartialRunes(t *testing.T) {
	cases := []struct {
		name    string
		stops   []string
		pieces  []string
		want    []string // emitted per push
		stopped int      // index of the push that stops, -1 none
		rest    string   // flush after the last push
	}{
		{"plain", nil, []string{"a", "bc"}, []string{"a", "bc"}, -1, ""},
		{"stop in one piece", []string{"END"}, []string{"ab", "xENDy"}, []string{"ab", "x"}, 1, ""},
		{"stop across pieces", []string{"END"}, []string{"aE", "N", "Dz"}, []string{"a", "", ""}, 2, ""},
		{"prefix that is not a stop", []string{"END"}, []string{"aE", "N", "x"}, []string{"a", "", "ENx"}, -1, ""},
		{"held at the end", []string{"END"}, []string{"aEN"}, []string{"a"}, -1, "EN"},
		{"split rune", nil, []string{"h\xc3", "\xa9!"}, []string{"h", "é!"}, -1, ""},
		{"split 4-byte rune", nil, []string{"\xf0\x9f", "\x98", "\x80"}, []string{"", "", "😀"}, -1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := textBuffer{stops: c.stops}
			for i, p := range c.pieces {
				got, stopped := b.push(p)
				if got != c.want[i] {
					t.Errorf("push %d (%q) = %q, want %q", i, p, got, c.want[i])
				}
				if stopped != (i == c.stopped) {
					t.Errorf("push %d stopped = %v", i, stopped)
				}
				if stopped {
					return
				}
			}
			if rest := b.flush(); rest != c.rest {
				t.Errorf("flush = %q, want %q", rest, c.rest)
			}
		})
	}
}

func TestTextBufferPassesPiecesWithoutCopying(t *testing.T) {
	b := textBuffer{stops: []string{"</code>"}}
	piece := strings.Repeat("x", 16)
	if n := testing.AllocsPerRun(100, func() {
		if out, _ := b.push(piece); out != piece {
			t.Fatalf("push = %q", out)
		}
	}); n != 0 {
		t.Errorf("push allocates %.0f times when nothing is held back", n)
	}
}
