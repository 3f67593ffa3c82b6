package synth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ollama/ollama/fs/ggml"
)

// qwenTokenizer loads Qwen2.5's tokenizer.json that scripts/deps.sh
// installs, skipping the test when it is not there.
func qwenTokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	path := FindTokenizer()
	if path == "" {
		t.Skipf("no Qwen2.5 tokenizer.json (run scripts/deps.sh to install it at %s)", TokenizerPath)
	}
	tok, err := LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func decodeGGUF(t *testing.T, path string) ggml.KV {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := ggml.Decode(f, -1)
	if err != nil {
		t.Fatal(err)
	}
	return g.KV()
}

// A model written with Qwen2.5's tokenizer carries its vocabulary,
// merges, special tokens and ids as a converted Qwen2.5-Coder-Instruct
// GGUF does, with the chat template and the embedding sized to match.
func TestQwenTokenizerModel(t *testing.T) {
	tok := qwenTokenizer(t)
	if len(tok.Tokens) != QwenFirstSpecialID+len(QwenSpecialTokens) || len(tok.Merges) < 150000 {
		t.Fatalf("%d tokens, %d merges", len(tok.Tokens), len(tok.Merges))
	}
	path := filepath.Join(t.TempDir(), "q.gguf")
	if err := WriteTinyQwen(context.Background(), path, 1, tok); err != nil {
		t.Fatal(err)
	}
	kv := decodeGGUF(t, path)
	tokens := kv.Strings("tokenizer.ggml.tokens")
	types := kv.Ints("tokenizer.ggml.token_type")
	if len(tokens) != QwenVocabRows || len(types) != QwenVocabRows {
		t.Fatalf("%d tokens, %d types; want %d", len(tokens), len(types), QwenVocabRows)
	}
	for i, s := range QwenSpecialTokens {
		if tokens[QwenFirstSpecialID+i] != s {
			t.Errorf("token %d is %q, want %q", QwenFirstSpecialID+i, tokens[QwenFirstSpecialID+i], s)
		}
	}
	for id, want := range map[int]int32{
		0: tokenTypeNormal, 151642: tokenTypeNormal,
		151643: tokenTypeControl, 151645: tokenTypeControl, 151659: tokenTypeControl, 151664: tokenTypeControl,
		151657: tokenTypeUserDefined, 151658: tokenTypeUserDefined,
		151665: tokenTypeUnused, QwenVocabRows - 1: tokenTypeUnused,
	} {
		if types[id] != want {
			t.Errorf("token %d %q has type %d, want %d", id, tokens[id], types[id], want)
		}
	}
	if tokens[QwenVocabRows-1] != fmt.Sprintf("[PAD%d]", QwenVocabRows-1) {
		t.Errorf("last row %q", tokens[QwenVocabRows-1])
	}
	if got := kv.Strings("tokenizer.ggml.merges"); !slices.Equal(got, tok.Merges) {
		t.Errorf("%d merges written, the tokenizer has %d", len(got), len(tok.Merges))
	}
	for key, want := range map[string]uint32{
		"tokenizer.ggml.bos_token_id": 151643, "tokenizer.ggml.eos_token_id": 151645, "tokenizer.ggml.padding_token_id": 151643,
	} {
		if got := kv.Uint(key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	if kv.String("tokenizer.ggml.pre") != "qwen2" || kv.String("tokenizer.ggml.model") != "gpt2" {
		t.Errorf("pre %q, model %q", kv.String("tokenizer.ggml.pre"), kv.String("tokenizer.ggml.model"))
	}
	if kv.ChatTemplate() != QwenCoderChatTemplate {
		t.Error("the chat template is not Qwen2.5-Coder-Instruct's")
	}
	if st, _ := os.Stat(path); st.Size() < int64(QwenVocabRows*64*4) {
		t.Errorf("%d bytes: the embedding does not have %d rows", st.Size(), QwenVocabRows)
	}
}

// The embedded template is the one chat's renderer is checked against.
func TestQwenCoderChatTemplateIsChatsCopy(t *testing.T) {
	b, err := os.ReadFile("../chat/testdata/templates/qwen2.5-coder-instruct.jinja")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != QwenCoderChatTemplate {
		t.Error("synth/qwen2.5-coder-instruct.jinja differs from chat/testdata/templates/qwen2.5-coder-instruct.jinja")
	}
	if !strings.Contains(QwenCoderChatTemplate, "<tool_call>") || !strings.Contains(QwenCoderChatTemplate, "You are Qwen, created by Alibaba Cloud") {
		t.Error("the template lacks its tools block or default system message")
	}
}

// fakeTokenizerJSON is a tokenizer.json shaped like Qwen2.5's, with
// made-up tokens; edit changes it before it is encoded.
func fakeTokenizerJSON(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	vocab := make(map[string]int, QwenFirstSpecialID)
	for i := range QwenFirstSpecialID {
		vocab[fmt.Sprintf("t%d", i)] = i
	}
	var added []map[string]any
	for i, s := range QwenSpecialTokens {
		added = append(added, map[string]any{"id": QwenFirstSpecialID + i, "content": s, "special": i < 14})
	}
	m := map[string]any{
		"added_tokens": added,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": qwen2Pretokenizer}, "behavior": "Isolated"},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false},
		}},
		"model": map[string]any{"type": "BPE", "byte_fallback": false, "vocab": vocab, "merges": []any{[]string{"t1", "t2"}, "t3 t4"}},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTokenizer(t *testing.T) {
	tok, err := parseTokenizer(fakeTokenizerJSON(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tok.Merges, []string{"t1 t2", "t3 t4"}) {
		t.Errorf("merges %q: both forms read as \"a b\"", tok.Merges)
	}
	if tok.Tokens[7] != "t7" || tok.Tokens[QwenIMEndID] != "<|im_end|>" || tok.Types[151657] != tokenTypeUserDefined || tok.Types[151660] != tokenTypeControl {
		t.Errorf("tokens or types misplaced: %q %q %d %d", tok.Tokens[7], tok.Tokens[QwenIMEndID], tok.Types[151657], tok.Types[151660])
	}
	for name, edit := range map[string]func(m map[string]any){
		"not Qwen2's pre-tokenizer": func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}
		},
		"a WordPiece model": func(m map[string]any) { m["model"].(map[string]any)["type"] = "WordPiece" },
		"another vocabulary size": func(m map[string]any) {
			m["model"].(map[string]any)["vocab"].(map[string]int)["extra"] = QwenFirstSpecialID
		},
		"added tokens in another order": func(m map[string]any) {
			a := m["added_tokens"].([]map[string]any)
			a[1]["content"], a[2]["content"] = a[2]["content"], a[1]["content"]
		},
		"a malformed merge": func(m map[string]any) { m["model"].(map[string]any)["merges"] = []any{[]string{"t1"}} },
	} {
		if _, err := parseTokenizer(fakeTokenizerJSON(t, edit)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FindTokenizer prefers $QWEND_TOKENIZER, then finds the installed file
// from a directory below the repository root.
func TestFindTokenizer(t *testing.T) {
	t.Setenv(TokenizerEnv, "/some/tokenizer.json")
	if got := FindTokenizer(); got != "/some/tokenizer.json" {
		t.Errorf("with %s set: %q", TokenizerEnv, got)
	}
	t.Setenv(TokenizerEnv, "none")
	if got := FindTokenizer(); got != "" {
		t.Errorf("with %s=none: %q", TokenizerEnv, got)
	}
	t.Setenv(TokenizerEnv, "")
	root := t.TempDir()
	p := filepath.Join(root, filepath.FromSlash(TokenizerPath))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if got := FindTokenizer(); got != p {
		t.Errorf("from %s: %q, want %q", sub, got, p)
	}
}
