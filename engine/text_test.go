package engine

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
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
			if rest, _ := b.flush(); rest != c.rest {
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

// The stop string that starts first in the text ends it, whatever the
// order of the list (issue 16's input: greedy output " meda meda ...").
func TestEarliestStopWinsWhateverTheOrder(t *testing.T) {
	for _, stops := range [][]string{{" m", "meda"}, {"meda", " m"}} {
		for _, pieces := range [][]string{{" meda meda"}, {" me", "da", " meda"}, {" ", "m", "e", "d", "a"}} {
			got, stopped := stream(stops, pieces)
			if got != "" || !stopped {
				t.Errorf("stops %q, pieces %q: %q stopped %v, want \"\" stopped", stops, pieces, got, stopped)
			}
		}
	}
	// a stop that starts earlier but completes later still wins
	if got, _ := stream([]string{"abcd", "bc"}, []string{"xabc", "d"}); got != "x" {
		t.Errorf("abcd before bc: %q, want \"x\"", got)
	}
	if got, _ := stream([]string{"abcd", "bc"}, []string{"xabc", "e"}); got != "xa" {
		t.Errorf("bc after an unfinished abcd: %q, want \"xa\"", got)
	}
	// the flush at the end of generation cuts at a stop held back
	if got, stopped := stream([]string{"abcd", "bc"}, []string{"xabc"}); got != "xa" || !stopped {
		t.Errorf("flush with bc held: %q stopped %v, want \"xa\" stopped", got, stopped)
	}
}

// stream pushes pieces through a buffer as the scheduler does (until a
// stop, then the flush) and returns the text emitted and whether a stop
// string ended it.
func stream(stops, pieces []string) (string, bool) {
	b := textBuffer{stops: stops}
	var out strings.Builder
	for _, p := range pieces {
		text, stopped := b.push(p)
		out.WriteString(text)
		if stopped {
			return out.String(), true
		}
	}
	rest, stopped := b.flush()
	out.WriteString(rest)
	return out.String(), stopped
}

// naiveStop is the reference: the whole text cut at the smallest index of
// any stop string in it.
func naiveStop(text string, stops []string) (string, bool) {
	cut := -1
	for _, s := range stops {
		if i := strings.Index(text, s); s != "" && i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return text, false
	}
	return text[:cut], true
}

// Random texts, stop sets and token boundaries (splitting multi-byte
// characters too): the streamed output equals the naive cut, and every
// piece emitted is whole UTF-8 (a character split across tokens waits for
// its last byte).
func TestTextBufferMatchesNaiveStop(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 1))
	alphabet := []string{"a", "b", "c", " ", "\n", "é", "😀"}
	chars := func(maxLen int) []string {
		c := make([]string, 1+r.IntN(maxLen))
		for i := range c {
			c[i] = alphabet[r.IntN(len(alphabet))]
		}
		return c
	}
	for i := range 20000 {
		tc := chars(24)
		text := strings.Join(tc, "")
		stops := make([]string, r.IntN(5))
		for j := range stops {
			if r.IntN(3) == 0 { // often a piece of the text
				a := r.IntN(len(tc))
				stops[j] = strings.Join(tc[a:a+1+r.IntN(min(5, len(tc)-a))], "")
			} else {
				stops[j] = strings.Join(chars(4), "")
			}
		}
		// token boundaries at random bytes
		var pieces []string
		for rest := text; rest != ""; {
			n := 1 + r.IntN(min(6, len(rest)))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		want, wantStop := naiveStop(text, stops)
		b := textBuffer{stops: stops}
		var out strings.Builder
		gotStop := false
		for _, p := range pieces {
			text, stopped := b.push(p)
			if !utf8.ValidString(text) {
				t.Fatalf("case %d: emitted %q, not whole UTF-8", i, text)
			}
			out.WriteString(text)
			if gotStop = stopped; stopped {
				break
			}
		}
		if !gotStop {
			rest, stopped := b.flush()
			out.WriteString(rest)
			gotStop = stopped
		}
		if got := out.String(); got != want || gotStop != wantStop {
			t.Fatalf("case %d: text %q stops %q pieces %q: got %q (stopped %v), want %q (stopped %v)",
				i, text, stops, pieces, got, gotStop, want, wantStop)
		}
	}
}
