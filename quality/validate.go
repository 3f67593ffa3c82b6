package quality

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/qwend/qwend/chat"
	"github.com/qwend/qwend/engine"
)

// A validation run answers each prompt of a set greedily (temperature 0,
// a fixed seed), one prompt at a time on one slot, with nothing reused
// from the previous prompt's KV cache, and compares the token ids with a
// stored baseline.
//
// What that guarantees: llama.cpp's arithmetic is deterministic for a
// given model file, llama.cpp build, CPU or GPU, and batch shape, so the
// same prompt decoded alone under the same settings gives the same tokens
// every time. What it does not: the logits differ in their last bits
// under another batch size, KV cache type, flash attention mode, number
// of slots, backend or CPU instruction set (ggml's kernels sum in other
// orders), and greedy decoding then picks another token wherever two
// were within that rounding of each other. So the baseline records the
// settings and where it was made, a run under other settings is reported
// as such, and on other hardware a difference may be rounding, not a
// regression. Through a serving daemon (RunHTTP), requests share batches
// with whatever else runs and reuse cached prefixes, so there a
// difference is only a hint.

// Message is one turn of a chat prompt.
type Message struct {
	Role    string `json:"role" yaml:"role"`
	Content string `json:"content" yaml:"content"`
}

// Prompt is one prompt of a set: a chat (Messages, rendered with the
// model's chat template), a fill-in-the-middle (Prefix and Suffix, in
// Qwen2.5-Coder's FIM format), or a completion (Prompt, as is, control
// tokens parsed, as /v1/completions takes it). Exactly one kind is set.
type Prompt struct {
	Name      string    `json:"name" yaml:"name"`
	Messages  []Message `json:"messages,omitempty" yaml:"messages,omitempty"`
	Prefix    string    `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	Suffix    string    `json:"suffix,omitempty" yaml:"suffix,omitempty"`
	Prompt    string    `json:"prompt,omitempty" yaml:"prompt,omitempty"`
	MaxTokens int       `json:"max_tokens,omitempty" yaml:"max_tokens,omitempty"` // 0: the set's
}

// Kind is "chat", "fim" or "completion".
func (p Prompt) Kind() string {
	switch {
	case len(p.Messages) > 0:
		return "chat"
	case p.Prefix != "" || p.Suffix != "":
		return "fim"
	}
	return "completion"
}

// PromptSet is a prompts file (YAML or JSON).
type PromptSet struct {
	MaxTokens int      `json:"max_tokens" yaml:"max_tokens"` // per prompt, unless it sets its own; default 48
	Prompts   []Prompt `json:"prompts" yaml:"prompts"`
}

//go:embed prompts.yaml
var defaultPrompts []byte

// DefaultPrompts is the prompt set that ships with qwend: short coding
// tasks in several languages, as chats, fill-in-the-middle and plain
// completions.
func DefaultPrompts() *PromptSet {
	s, err := ParsePrompts(defaultPrompts)
	if err != nil {
		panic(err) // the embedded file is checked by the tests
	}
	return s
}

// LoadPrompts reads a prompts file; "" is DefaultPrompts.
func LoadPrompts(path string) (*PromptSet, error) {
	if path == "" {
		return DefaultPrompts(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParsePrompts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParsePrompts parses a prompt set in YAML (JSON is YAML too) and checks
// it: names present and distinct, one kind of prompt each, known roles.
func ParsePrompts(b []byte) (*PromptSet, error) {
	var s PromptSet
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	if s.MaxTokens == 0 {
		s.MaxTokens = 48
	}
	if s.MaxTokens < 1 || len(s.Prompts) == 0 {
		return nil, errors.New("a prompt set needs prompts and a positive max_tokens")
	}
	seen := map[string]bool{}
	for i, p := range s.Prompts {
		switch {
		case p.Name == "" || seen[p.Name]:
			return nil, fmt.Errorf("prompts[%d]: name %q empty or repeated", i, p.Name)
		case p.MaxTokens < 0:
			return nil, fmt.Errorf("prompts[%d] (%s): negative max_tokens", i, p.Name)
		}
		seen[p.Name] = true
		kinds := 0
		for _, set := range []bool{len(p.Messages) > 0, p.Prefix != "" || p.Suffix != "", p.Prompt != ""} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			return nil, fmt.Errorf("prompts[%d] (%s): set exactly one of messages, prefix/suffix, prompt", i, p.Name)
		}
		for j, m := range p.Messages {
			if !strings.Contains(" system user assistant ", " "+m.Role+" ") {
				return nil, fmt.Errorf("prompts[%d].messages[%d]: role %q (want system, user or assistant)", i, j, m.Role)
			}
		}
		if s.Prompts[i].MaxTokens == 0 {
			s.Prompts[i].MaxTokens = s.MaxTokens
		}
	}
	return &s, nil
}

// SHA256 identifies the set: its prompts and their token budgets.
func (s *PromptSet) SHA256() string {
	b, _ := json.Marshal(s.Prompts)
	return sha256Hex(b)
}

// Settings are what a run is made under: the engine settings that change
// llama.cpp's arithmetic (a difference from the baseline's is reported),
// and the seed. Threads is recorded, not compared: each output value is
// summed by one thread, so the thread count does not change results.
type Settings struct {
	Slots          int    `json:"slots"`
	ContextPerSlot int    `json:"context_per_slot"`
	BatchSize      int    `json:"batch_size"`
	FlashAttention string `json:"flash_attention"`
	KVCacheType    string `json:"kv_cache_type"`
	GPULayers      int    `json:"gpu_layers"`
	Seed           uint64 `json:"seed"`
	Threads        int    `json:"threads"`
}

// Model identifies the model file and where it ran.
type Model struct {
	Path        string `json:"path"`
	SHA256      string `json:"sha256"` // of the whole GGUF file
	Size        int64  `json:"size"`
	Fingerprint string `json:"fingerprint"` // engine.Info.Fingerprint: file, llama.cpp build, CPU/GPU, settings
	Backend     string `json:"backend"`
}

// Result is one prompt's answer.
type Result struct {
	Name         string `json:"name"`
	Kind         string `json:"kind"`
	PromptTokens int    `json:"prompt_tokens"`
	PromptSHA256 string `json:"prompt_sha256"` // of the prompt's token ids
	Output       string `json:"output"`
	OutputSHA256 string `json:"output_sha256"`
	TokenIDs     []int  `json:"token_ids"` // the output's, without the end-of-generation token
	FinishReason string `json:"finish_reason"`
}

// Baseline is a validation run as stored: what was run, where, and what
// came out.
type Baseline struct {
	Created       time.Time `json:"created"`
	QwendVersion  string    `json:"qwend_version"`
	LlamaBuild    string    `json:"llama_build"`
	Model         Model     `json:"model"`
	Settings      Settings  `json:"settings"`
	PromptsSHA256 string    `json:"prompts_sha256"`
	Results       []Result  `json:"results"`
}

// ReadBaseline reads a baseline file.
func ReadBaseline(path string) (*Baseline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var base Baseline
	if err := json.Unmarshal(b, &base); err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	if len(base.Results) == 0 || base.Model.SHA256 == "" {
		return nil, fmt.Errorf("baseline %s: no results or no model hash", path)
	}
	return &base, nil
}

// WriteFile writes the baseline as indented JSON, each token id list on
// one line.
func (b *Baseline) WriteFile(path string) error {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	out = numberList.ReplaceAllFunc(out, func(m []byte) []byte {
		return bytes.Join(bytes.Fields(m), nil)
	})
	return os.WriteFile(path, append(out, '\n'), 0o644)
}

// numberList matches an indented JSON array of integers.
var numberList = regexp.MustCompile(`\[\s*-?\d+(?:\s*,\s*-?\d+)*\s*\]`)

// FileSHA256 hashes a whole file (a GGUF, for Model.SHA256).
func FileSHA256(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func idsSHA256(ids []int) string {
	b, _ := json.Marshal(ids)
	return sha256Hex(b)
}

// Run answers every prompt of set with e, greedily and in order, each
// decoded alone from an empty KV cache. e should have one slot and
// nothing else running: with more slots or other requests the batches,
// and so the last bits of the logits, change.
func Run(ctx context.Context, e *engine.Engine, set *PromptSet, seed uint64) ([]Result, error) {
	tmpl, err := chat.ForModel(e.Info().ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("the model's chat template: %w", err)
	}
	out := make([]Result, 0, len(set.Prompts))
	for _, p := range set.Prompts {
		req := &engine.Request{
			ID: "validate-" + p.Name, MaxTokens: p.MaxTokens, ReturnTokens: true,
			Sampling: engine.SamplingParams{Temperature: 0, Seed: seed}, HasSeed: true,
		}
		switch p.Kind() {
		case "chat":
			msgs := make([]chat.Message, len(p.Messages))
			for i, m := range p.Messages {
				msgs[i] = chat.Message{Role: m.Role, Content: m.Content}
			}
			if req.Segments, err = tmpl.Render(chat.Conversation{Messages: msgs}); err != nil {
				return nil, fmt.Errorf("prompt %s: %w", p.Name, err)
			}
			req.Operation = engine.OperationChat
		case "fim":
			req.Segments = chat.FIM(p.Prefix, p.Suffix)
		default:
			req.Prompt = p.Prompt
		}
		r, err := generateUncached(ctx, e, req)
		if err != nil {
			return nil, fmt.Errorf("prompt %s: %w", p.Name, err)
		}
		r.Name, r.Kind = p.Name, p.Kind()
		out = append(out, r)
	}
	return out, nil
}

// flushPrompts are one-token prompts run before a prompt so that the slot's
// KV cache shares no prefix with it: the engine reuses a cached prefix,
// and a prompt prefilled after a reused prefix is computed in other
// batch shapes than one prefilled whole, so its answer would depend on
// the prompt before it. Two, in case a prompt starts with the first.
var flushPrompts = []string{"\x7f", "\x1f"}

func generateUncached(ctx context.Context, e *engine.Engine, req *engine.Request) (Result, error) {
	for _, flush := range flushPrompts {
		if _, err := e.Generate(ctx, &engine.Request{Prompt: flush, MaxTokens: 1}, func(string) {}); err != nil {
			return Result{}, fmt.Errorf("clearing the KV cache: %w", err)
		}
		var text strings.Builder
		r := *req
		res, err := e.Generate(ctx, &r, func(s string) { text.WriteString(s) })
		if err != nil {
			return Result{}, err
		}
		if res.CachedTokens > 0 {
			continue // the prompt starts with the flush token: flush with the other
		}
		if len(res.Tokens) < res.PromptTokens {
			return Result{}, fmt.Errorf("the engine returned %d tokens for a %d-token prompt", len(res.Tokens), res.PromptTokens)
		}
		ids := res.Tokens[res.PromptTokens:]
		return Result{
			PromptTokens: res.PromptTokens, PromptSHA256: idsSHA256(res.Tokens[:res.PromptTokens]),
			Output: text.String(), OutputSHA256: sha256Hex([]byte(text.String())),
			TokenIDs: append([]int{}, ids...), FinishReason: res.FinishReason,
		}, nil
	}
	return Result{}, errors.New("could not run the prompt from an empty KV cache")
}

// PromptReport is one prompt's comparison.
type PromptReport struct {
	Name  string `json:"name"`
	Match bool   `json:"match"`
	// Missing: the prompt is in the set but not in the baseline (or the
	// other way round, with Extra).
	Missing bool `json:"missing,omitempty"`
	Extra   bool `json:"extra,omitempty"`
	// PromptDiffers: the prompt's tokens are not the baseline's (another
	// tokenizer or chat template).
	PromptDiffers bool `json:"prompt_differs,omitempty"`
	// FirstDivergingToken is the 0-based index of the first output token
	// that differs (or the shorter output's length); -1 when they match.
	FirstDivergingToken int    `json:"first_diverging_token"`
	ExpectedTokens      int    `json:"expected_tokens"`
	GotTokens           int    `json:"got_tokens"`
	ExpectedTokenID     *int   `json:"expected_token_id,omitempty"`
	GotTokenID          *int   `json:"got_token_id,omitempty"`
	Expected            string `json:"expected,omitempty"` // the baseline's text around the divergence
	Got                 string `json:"got,omitempty"`      // this run's
	// DivergingAt is the byte offset in the output texts where they
	// first differ (RunHTTP's comparison, which has no token ids).
	DivergingAt *int `json:"diverging_at_byte,omitempty"`
}

// Report is a comparison of a run with a baseline.
type Report struct {
	Baseline Model `json:"baseline_model"`
	Model    Model `json:"model"`
	// SettingsDiffer lists the settings unlike the baseline's ("batch_size:
	// 512 -> 256"): outputs may then differ by rounding alone.
	SettingsDiffer []string `json:"settings_differ"`
	// Notes are differences of environment (llama.cpp build, qwend
	// version, CPU or GPU through the fingerprint) that change nothing by
	// themselves but may explain a difference.
	Notes    []string       `json:"notes"`
	Prompts  []PromptReport `json:"prompts"`
	Matched  int            `json:"matched"`
	Differed int            `json:"differed"`
}

// OK reports whether every prompt matched under the baseline's settings.
func (r *Report) OK() bool { return r.Differed == 0 && len(r.SettingsDiffer) == 0 }

// ErrModelDiffers: the model file is not the baseline's, so there is
// nothing to compare.
var ErrModelDiffers = errors.New("the model is not the baseline's")

// Compare compares a run (cur) with a baseline. Its error wraps
// ErrModelDiffers when the model files differ.
func Compare(base, cur *Baseline) (*Report, error) {
	if base.Model.SHA256 != cur.Model.SHA256 {
		return nil, fmt.Errorf("%w: the baseline was made with %s (sha256 %s, %d bytes), this is %s (sha256 %s, %d bytes); run with --update to make a new baseline for it",
			ErrModelDiffers, base.Model.Path, short(base.Model.SHA256), base.Model.Size, cur.Model.Path, short(cur.Model.SHA256), cur.Model.Size)
	}
	r := &Report{Baseline: base.Model, Model: cur.Model, SettingsDiffer: []string{}, Notes: []string{}}
	b, c := base.Settings, cur.Settings
	for _, d := range []struct {
		name      string
		was, is   any
		different bool
	}{
		{"slots", b.Slots, c.Slots, b.Slots != c.Slots},
		{"context_per_slot", b.ContextPerSlot, c.ContextPerSlot, b.ContextPerSlot != c.ContextPerSlot},
		{"batch_size", b.BatchSize, c.BatchSize, b.BatchSize != c.BatchSize},
		{"flash_attention", b.FlashAttention, c.FlashAttention, b.FlashAttention != c.FlashAttention},
		{"kv_cache_type", b.KVCacheType, c.KVCacheType, b.KVCacheType != c.KVCacheType},
		{"gpu_layers", b.GPULayers, c.GPULayers, b.GPULayers != c.GPULayers},
		{"seed", b.Seed, c.Seed, b.Seed != c.Seed},
	} {
		if d.different {
			r.SettingsDiffer = append(r.SettingsDiffer, fmt.Sprintf("%s: %v -> %v", d.name, d.was, d.is))
		}
	}
	for _, d := range [][3]string{
		{"llama.cpp build", base.LlamaBuild, cur.LlamaBuild},
		{"qwend version", base.QwendVersion, cur.QwendVersion},
		{"backend", base.Model.Backend, cur.Model.Backend},
	} {
		if d[1] != d[2] {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: %s -> %s", d[0], d[1], d[2]))
		}
	}
	if base.Model.Fingerprint != cur.Model.Fingerprint && len(r.SettingsDiffer) == 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("fingerprint %s -> %s: the same file and settings on another llama.cpp build, CPU or GPU",
			base.Model.Fingerprint, cur.Model.Fingerprint))
	}
	if base.PromptsSHA256 != cur.PromptsSHA256 {
		r.Notes = append(r.Notes, "the prompt set is not the baseline's: prompts are compared by name")
	}
	r.Prompts = comparePrompts(base.Results, cur.Results)
	for _, p := range r.Prompts {
		if p.Match {
			r.Matched++
		} else {
			r.Differed++
		}
	}
	return r, nil
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16] + "..."
	}
	return sum
}

func comparePrompts(base, cur []Result) []PromptReport {
	byName := map[string]Result{}
	for _, r := range base {
		byName[r.Name] = r
	}
	var out []PromptReport
	seen := map[string]bool{}
	for _, c := range cur {
		seen[c.Name] = true
		b, ok := byName[c.Name]
		if !ok {
			out = append(out, PromptReport{Name: c.Name, Missing: true, FirstDivergingToken: -1, GotTokens: len(c.TokenIDs)})
			continue
		}
		out = append(out, compareResult(b, c))
	}
	for _, b := range base {
		if !seen[b.Name] {
			out = append(out, PromptReport{Name: b.Name, Extra: true, FirstDivergingToken: -1, ExpectedTokens: len(b.TokenIDs)})
		}
	}
	return out
}

// contextBytes is how much text either side of a divergence a report
// shows.
const contextBytes = 40

func compareResult(b, c Result) PromptReport {
	p := PromptReport{Name: c.Name, FirstDivergingToken: -1, ExpectedTokens: len(b.TokenIDs), GotTokens: len(c.TokenIDs)}
	p.PromptDiffers = b.PromptSHA256 != "" && c.PromptSHA256 != "" && b.PromptSHA256 != c.PromptSHA256
	if c.TokenIDs == nil { // a run without token ids (RunHTTP): compare the text
		if c.Output == b.Output {
			p.Match = true
			return p
		}
		i := 0
		for i < len(b.Output) && i < len(c.Output) && b.Output[i] == c.Output[i] {
			i++
		}
		p.DivergingAt = &i
		p.Expected, p.Got = around(b.Output, i), around(c.Output, i)
		return p
	}
	i := 0
	for i < len(b.TokenIDs) && i < len(c.TokenIDs) && b.TokenIDs[i] == c.TokenIDs[i] {
		i++
	}
	if i == len(b.TokenIDs) && i == len(c.TokenIDs) && !p.PromptDiffers {
		p.Match = true
		return p
	}
	if i < len(b.TokenIDs) || i < len(c.TokenIDs) {
		p.FirstDivergingToken = i
	}
	if i < len(b.TokenIDs) {
		p.ExpectedTokenID = &b.TokenIDs[i]
	}
	if i < len(c.TokenIDs) {
		p.GotTokenID = &c.TokenIDs[i]
	}
	// the texts from where they part: the common byte prefix of the
	// outputs is at least the shared tokens' text
	j := 0
	for j < len(b.Output) && j < len(c.Output) && b.Output[j] == c.Output[j] {
		j++
	}
	p.Expected, p.Got = around(b.Output, j), around(c.Output, j)
	return p
}

// around returns the text near byte offset i, marked with "⟦" where the
// texts part, cut at whole characters.
func around(s string, i int) string {
	lo, hi := max(0, i-contextBytes), min(len(s), i+contextBytes)
	for lo > 0 && !utf8.RuneStart(s[lo]) {
		lo--
	}
	for hi < len(s) && !utf8.RuneStart(s[hi]) {
		hi++
	}
	for i > lo && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	pre, post := "", ""
	if lo > 0 {
		pre = "…"
	}
	if hi < len(s) {
		post = "…"
	}
	return pre + s[lo:i] + "⟦" + s[i:hi] + post
}
