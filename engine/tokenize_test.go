package engine

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// detokenize renders tokens back to text, special tokens included.
func detokenize(e *Engine, toks []int) string {
	pieces := map[int]string{}
	var b strings.Builder
	for _, t := range toks {
		p, ok := pieces[t]
		if !ok {
			p = e.model.TokenToPiece(t)
			pieces[t] = p
		}
		b.WriteString(p)
	}
	return b.String()
}

// longestRun is the most characters of one class in a row in s, as
// splitRuns counts them.
func longestRun(s string) int {
	longest, n, anys, run := 0, 0, 0, runNone
	for i := 0; i < len(s); {
		c, size := classAt(s, i)
		if c == runAny {
			anys++
		} else {
			if c != run {
				run, n = c, anys
			}
			anys = 0
		}
		n++
		longest = max(longest, n)
		i += size
	}
	return longest
}

// Long runs of one class used to crash the process inside llama_tokenize
// (a C++ stack overflow in std::regex, from about 26,200 characters on).
var longRunTexts = []struct {
	name string
	text string
}{
	{"letters 1000", strings.Repeat("a", 1000)},
	{"letters 26500", strings.Repeat("a", 26500)},
	{"letters 64000", strings.Repeat("a", 64000)},
	{"digits 64000", strings.Repeat("7", 64000)},
	{"spaces 1000", strings.Repeat(" ", 1000)},
	{"spaces 64000", strings.Repeat(" ", 64000)},
	{"newlines 64000", strings.Repeat("\n", 64000)},
	{"bangs 64000", strings.Repeat("!", 64000)},
	{"e acute 64000", strings.Repeat("é", 64000)},
	{"han 64000", strings.Repeat("漢", 64000)},
	{"three scripts 64002", strings.Repeat("aé漢", 21334)},
	{"punctuation and symbols 64000", strings.Repeat("!?.,;<|>", 8000)},
	{"whitespace mixed 64002", strings.Repeat(" \n\t", 21334)},
	{"one match over two runs", " " + strings.Repeat("!", 32000) + strings.Repeat("\n", 32000)},
	{"long word in prose", "Hello, world! " + strings.Repeat("x", 30000) + " and more text, 42.\n"},
	{"chat turn", "<|im_start|>user\n" + strings.Repeat("é", 40000) + "<|im_end|>\n"},
	{"prose", "The quick brown fox jumps over the lazy dog.\n\tfunc main() { fmt.Println(\"héllo, 世界\") }\n"},
	{"letters 1000000 bytes", strings.Repeat("a", 1_000_000)},
}

func TestTokenizeLongRuns(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	for _, tc := range longRunTexts {
		t.Run(tc.name, func(t *testing.T) {
			toks, err := e.Tokenize(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if len(toks) == 0 {
				t.Fatal("no tokens")
			}
			if got := detokenize(e, toks); got != tc.text {
				t.Errorf("tokens render %d bytes, not the %d of the text", len(got), len(tc.text))
			}
			if longestRun(tc.text) > maxRun {
				return
			}
			// below the bound: exactly one llama_tokenize call's tokens
			direct, err := e.model.Tokenize(tc.text, false, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(toks, direct) {
				t.Errorf("%d tokens, a direct call gives %d", len(toks), len(direct))
			}
		})
	}
}

// A run longer than the bound is tokenized as if broken after every maxRun
// characters.
func TestTokenizeBreaksLongRunEveryMaxRun(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	for _, unit := range []string{"a", "é", " ", "!"} {
		n := 2*maxRun + 452
		// the run counts from its start, after the digit
		got, err := e.Tokenize("7" + strings.Repeat(unit, n))
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for _, part := range []string{"7" + strings.Repeat(unit, maxRun), strings.Repeat(unit, maxRun), strings.Repeat(unit, n-2*maxRun)} {
			toks, err := e.model.Tokenize(part, false, true)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, toks...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q x %d: %d tokens, want the %d of the run broken every %d", unit, n, len(got), len(want), maxRun)
		}
	}
}

// A cut in a long run of punctuation never separates a special token's
// leading '<' from the rest of it.
func TestTokenizeLongRunKeepsSpecialTokens(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	imStart, err := e.Tokenize("<|im_start|>")
	if err != nil || len(imStart) != 1 {
		t.Fatalf("<|im_start|> is %v (%v), want one token", imStart, err)
	}
	for k := maxRun - 4; k <= maxRun+4; k++ {
		for _, lead := range []string{"!", "<"} {
			text := strings.Repeat(lead, k) + "<|im_start|>user\n"
			toks, err := e.Tokenize(text)
			if err != nil {
				t.Fatal(err)
			}
			if n := countOf(toks, imStart[0]); n != 1 {
				t.Errorf("%q x %d then <|im_start|>: the special token appears %d times, want 1", lead, k, n)
			}
		}
	}
}

func countOf(toks []int, tok int) int {
	n := 0
	for _, t := range toks {
		if t == tok {
			n++
		}
	}
	return n
}

func TestClassAt(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want runClass
	}{
		{"a", runLetter}, {"Z", runLetter}, {"é", runLetter}, {"漢", runLetter}, {"ж", runLetter}, {"ا", runLetter},
		{"7", runNumber}, {"٣", runNumber}, {"Ⅻ", runNumber},
		{" ", runSpace}, {"\n", runSpace}, {"\r", runSpace}, {"\t", runSpace}, {"\u00a0", runSpace}, {"\u3000", runSpace}, {"\u2028", runSpace},
		{"!", runOther}, {"<", runOther}, {"_", runOther}, {"€", runOther}, {"\u0301", runOther}, {"\x00", runOther}, {"\u200b", runOther}, {"\ufffd", runOther},
		{"\xff", runAny}, {"\xc1", runAny}, {"\U0002EBF0", runAny}, // an invalid byte; CJK Extension I (Unicode 15.1)
	} {
		c, size := classAt(tc.s, 0)
		if c != tc.want {
			t.Errorf("%+q: class %d, want %d", tc.s, c, tc.want)
		}
		if tc.want != runAny && size != len(tc.s) {
			t.Errorf("%+q: size %d, want %d", tc.s, size, len(tc.s))
		}
	}
}

// randomRuns builds text from runs of random classes and lengths, some far
// longer than limit, with special tokens, invalid bytes and unassigned code
// points among them.
func randomRuns(r *rand.Rand, limit int) string {
	units := [][]string{
		{"a", "é", "漢", "Ж"}, {"1", "٣"}, {" ", "\n", "\t", "\u3000"}, {"!", "<", "|", ">", "€", "\u0301"},
		{"\xff", "\xc1\x81", "\U0002EBF0"}, {"<|im_start|>", "</tool_call>", "<|im_end|>"},
	}
	var b strings.Builder
	for range 1 + r.IntN(12) {
		set := units[r.IntN(len(units))]
		n := r.IntN(limit / 2)
		if r.IntN(3) == 0 {
			n = limit - 2 + r.IntN(4*limit)
		}
		for range n {
			b.WriteString(set[r.IntN(len(set))])
		}
	}
	return b.String()
}

func TestSplitRuns(t *testing.T) {
	const limit = 16
	specials := []string{"<|im_start|>", "</tool_call>", "<|im_end|>"}
	r := rand.New(rand.NewPCG(1, 2))
	inputs := []string{"", "a", strings.Repeat("a", limit), strings.Repeat("a", limit+1), strings.Repeat("!", limit-1) + "<|im_start|>"}
	for _, tc := range longRunTexts {
		inputs = append(inputs, tc.text)
	}
	for range 2000 {
		inputs = append(inputs, randomRuns(r, limit))
	}
	for _, bound := range []int{limit, maxRun} {
		for _, in := range inputs {
			pieces := splitRuns(in, bound)
			if pieces == nil {
				if longestRun(in) > bound {
					t.Fatalf("bound %d: %.60q... has a run of %d but was not cut", bound, in, longestRun(in))
				}
				continue
			}
			if strings.Join(pieces, "") != in {
				t.Fatalf("bound %d: pieces of %.60q... do not concatenate to it", bound, in)
			}
			cuts := map[int]bool{}
			at := 0
			for i, p := range pieces {
				if p == "" {
					t.Fatalf("bound %d: piece %d of %.60q... is empty", bound, i, in)
				}
				if n := longestRun(p); n > bound {
					t.Fatalf("bound %d: piece %d of %.60q... has a run of %d", bound, i, in, n)
				}
				if utf8.ValidString(in) && !utf8.ValidString(p) {
					t.Fatalf("bound %d: piece %d of %.60q... is not valid UTF-8", bound, i, in)
				}
				at += len(p)
				cuts[at] = true
			}
			for _, s := range specials {
				for off := 0; ; {
					j := strings.Index(in[off:], s)
					if j < 0 {
						break
					}
					for k := off + j + 1; k < off+j+len(s); k++ {
						if cuts[k] {
							t.Fatalf("bound %d: a cut splits %s at byte %d of %.60q...", bound, s, off+j, in)
						}
					}
					off += j + 1
				}
			}
		}
	}
}

// go test -run xxx -fuzz FuzzTokenize ./engine
func FuzzTokenize(f *testing.F) {
	e := newEngine(f, Config{Parallel: 1})
	// the long texts, cut to a few runs of the bound so that mutating and
	// minimizing stay quick; TestTokenizeLongRuns has them whole
	for _, tc := range longRunTexts {
		text := tc.text
		if n := 3*maxRun + 100; len(text) > n {
			for !utf8.RuneStart(text[n]) {
				n--
			}
			text = text[:n]
		}
		f.Add(text, true)
		f.Add(text, false)
	}
	f.Add("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n", true)
	f.Add("a\xc1\x81a\xc1\x81\xff é", false)
	f.Fuzz(func(t *testing.T, text string, special bool) {
		// longer inputs add nothing past a few runs of the bound, and each
		// llama call costs a millisecond: keep every execution short
		if len(text) > 4*maxRun+64 {
			text = text[:4*maxRun+64]
		}
		toks, err := e.tokenize(text, special)
		if err != nil {
			t.Fatal(err)
		}
		if text != "" && len(toks) == 0 {
			t.Fatal("no tokens for non-empty text")
		}
		// the pieces of a NUL byte render empty; invalid UTF-8 renders as U+FFFD
		if utf8.ValidString(text) && !strings.Contains(text, "\x00") {
			if got := detokenize(e, toks); got != text {
				t.Fatalf("tokens render %q", got)
			}
		}
		if len(text) <= maxRun {
			// tokenize reads invalid UTF-8 as U+FFFD (llama.cpp can abort on it)
			direct, err := e.model.Tokenize(strings.ToValidUTF8(text, "\uFFFD"), false, special)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(toks, direct) {
				t.Fatalf("tokens %v, one llama call gives %v", toks, direct)
			}
		}
	})
}
