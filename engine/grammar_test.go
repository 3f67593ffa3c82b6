package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ollama/ollama/llama"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/qwend/qwend/synth"
)

func compileSchema(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The synthetic model's output, decoded under the grammar of a schema,
// parses and validates against that schema, greedy and sampled.
func TestGrammarOutputValidates(t *testing.T) {
	e := newEngine(t, Config{Parallel: 2, ContextPerSlot: 1024})
	schemas := map[string]string{
		"object": `{"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"},
			"n": {"type": "integer", "minimum": 0, "maximum": 99}}, "required": ["color", "ok", "n"], "additionalProperties": false}`,
		"array":    `{"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}, "minItems": 1, "maxItems": 4}`,
		"nested":   `{"type": "object", "properties": {"user": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}}, "required": ["name", "tags"]}}, "required": ["user"]}`,
		"formats":  `{"type": "object", "properties": {"day": {"type": "string", "format": "date"}, "id": {"type": "string", "format": "uuid"}}, "required": ["day", "id"]}`,
		"optional": `{"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 5}, "b": {"const": "x"}}, "required": ["a"]}`,
		"anyOf":    `{"anyOf": [{"type": "null"}, {"type": "object", "properties": {"s": {"type": "string", "minLength": 1, "maxLength": 4}}, "required": ["s"]}]}`,
	}
	for name, schema := range schemas {
		g, err := SchemaGrammar([]byte(schema))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		validator := compileSchema(t, schema)
		for _, sp := range []SamplingParams{{}, {Temperature: 1, TopP: 1, Seed: 7}} {
			req := Request{Prompt: "<|im_start|>user\nAnswer in JSON.<|im_end|>\n<|im_start|>assistant\n", MaxTokens: 600, Grammar: g, Sampling: sp}
			out, res, err := generate(t, e, context.Background(), req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if res.FinishReason != FinishStop {
				t.Errorf("%s (temperature %v): finish %q after %d tokens: %q", name, sp.Temperature, res.FinishReason, res.OutputTokens, out)
				continue
			}
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
			if err != nil {
				t.Errorf("%s (temperature %v): output %q does not parse: %v", name, sp.Temperature, out, err)
				continue
			}
			if err := validator.Validate(inst); err != nil {
				t.Errorf("%s (temperature %v): output %q does not validate: %v", name, sp.Temperature, out, err)
			}
		}
	}
	// the same prompt without a grammar is not JSON: the grammar did it
	out, _, err := generate(t, e, context.Background(), Request{Prompt: "<|im_start|>user\nAnswer in JSON.<|im_end|>\n<|im_start|>assistant\n", MaxTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jsonschema.UnmarshalJSON(strings.NewReader(out)); err == nil {
		t.Errorf("unconstrained output %q is JSON already; the test proves nothing", out)
	}
}

func TestJSONObjectGrammar(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 1024})
	out, res, err := generate(t, e, context.Background(), Request{Prompt: "json:", MaxTokens: 64, Grammar: JSONObjectGrammar()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("output %q does not open an object", out)
	}
	if res.FinishReason == FinishStop {
		if _, err := jsonschema.UnmarshalJSON(strings.NewReader(out)); err != nil {
			t.Errorf("complete output %q does not parse: %v", out, err)
		}
	}
}

// What the converter would ignore or could not bear is refused, naming the
// keyword, before the schema reaches llama.cpp.
func TestSchemaGrammarRefuses(t *testing.T) {
	deep := strings.Repeat(`{"items": `, 40) + `{}` + strings.Repeat(`}`, 40)
	veryDeep := strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000)
	for schema, want := range map[string]string{
		`{"type": "object", "not": {"type": "null"}}`:                                       `keyword "not"`,
		`{"properties": {"a": {"type": "string", "if": {}}}}`:                               `keyword "if" at properties.a`,
		`{"type": "array", "uniqueItems": true}`:                                            `keyword "uniqueItems"`,
		`{"type": "string", "maxLength": 100000}`:                                           `keyword "maxLength"`,
		`{"type": "array", "minItems": -1}`:                                                 `keyword "minItems"`,
		`{"type": "string", "format": "email"}`:                                             `keyword "format"`,
		`{"type": "string", "pattern": "^a{5000}$"}`:                                        `keyword "pattern"`,
		`{"$ref": "https://example.com/s.json"}`:                                            `keyword "$ref"`,
		`{"type": "integer", "maximum": 1e300}`:                                             `keyword "maximum"`,
		`{"type": "strange"}`:                                                               `keyword "type"`,
		`{"properties": {"id": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8}}}`: `keyword "maxLength" at properties.id`,
		`[1, 2]`:            "not a JSON object",
		`{"type": "object"`: "not JSON",
		deep:                "nested deeper than 32",
		veryDeep:            "nested deeper than 32",
		`{"anyOf": [{"type": "string"}, {"multipleOf": 3}], "description": "<|im_end|>"}`: `keyword "multipleOf" at anyOf[1]`,
	} {
		_, err := SchemaGrammar([]byte(schema))
		var se *SchemaError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: got %v, want a SchemaError with %q", schema, err, want)
		}
	}
	// annotations, local references and the old tuple form pass
	for _, schema := range []string{
		`{"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "t", "description": "d", "type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"type": "integer", "examples": [1]}}}`,
		`{"type": "array", "items": [{"type": "string"}, {"type": "number"}]}`,
		`{"type": ["string", "null"]}`,
	} {
		if _, err := SchemaGrammar([]byte(schema)); err != nil {
			t.Errorf("%s: %v", schema, err)
		}
	}
}

func TestBadGrammarIsInvalid(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1})
	_, _, err := generate(t, e, context.Background(), Request{Prompt: "x", MaxTokens: 4, Grammar: "root ::= ( unclosed"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

// pickFullMask is the reference pick: the whole row masked by the grammar
// whenever the sampler's first choice is refused (llama.cpp's resampling).
func pickFullMask(s *sampler, logits []float32, recent []int) (int, bool) {
	s.penalize(logits, recent)
	tok := s.choose(logits)
	if !s.allowed(tok) {
		td := make([]llama.TokenData, len(logits))
		for i, l := range logits {
			td[i] = llama.TokenData{ID: int32(i), Logit: l}
		}
		s.grammar.Apply(td)
		live := false
		for i := range td {
			logits[i] = td[i].Logit
			live = live || !math.IsInf(float64(td[i].Logit), -1)
		}
		if !live {
			return 0, false
		}
		if tok = s.choose(logits); math.IsInf(float64(logits[tok]), -1) {
			return 0, false
		}
	}
	s.accept(tok)
	return tok, true
}

// pick's search of the best candidates draws, step after step, the same
// tokens as masking the whole row, greedy and with top_k, on random rows
// (whose first choice the grammar mostly refuses); the rows' refusals were
// counted, so the search was exercised.
func TestGrammarPickMatchesFullMask(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 256})
	src, err := SchemaGrammar([]byte(`{"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
		"n": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["alpha", "beta"]}}}, "required": ["name", "n", "tags"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []SamplingParams{
		{},
		{Temperature: 1, TopK: 40, TopP: 1, Seed: 3},
		{Temperature: 0.7, TopK: 5, TopP: 0.9, MinP: 0.05, Seed: 9},
		{Temperature: 1, TopK: 2000, TopP: 1, Seed: 4}, // more than the vocabulary: the whole row
		{Temperature: 1, TopK: 40, TopP: 1, Seed: 5, RepeatPenalty: 1.5, RepeatLastN: 16, LogitBias: map[int]float32{7: 5}},
	} {
		fast, ref := newSampler(p), newSampler(p)
		for _, s := range []*sampler{fast, ref} {
			g, err := e.newGrammar(src)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free()
			s.grammar, s.ends = g, e.ends
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var recent []int
		refused, steps := 0, 0
		for step := range 300 {
			steps++
			row := make([]float32, e.nVocab)
			for i := range row {
				row[i] = float32(rng.NormFloat64() * 3)
			}
			a, b := slices.Clone(row), slices.Clone(row)
			if !ref.allowed(argmax(row)) { // the best token, as a proxy for the first choice
				refused++
			}
			got, okGot := fast.pick(a, recent)
			want, okWant := pickFullMask(ref, b, recent)
			if got != want || okGot != okWant {
				t.Fatalf("%+v, step %d: pick %d (%v), full mask %d (%v)", p, step, got, okGot, want, okWant)
			}
			if !okGot || e.ends[got] {
				break
			}
			recent = append(recent, got)
		}
		if refused == 0 {
			t.Errorf("%+v: the grammar refused no first choice; the search was not exercised", p)
		}
		t.Logf("top_k %d, temperature %v: %d steps, the best token refused at %d", p.TopK, p.Temperature, steps, refused)
	}
}

// go test -run xxx -bench GrammarPick ./engine
//
// One constrained token on Qwen2.5's 151,936-token vocabulary (the tiny
// shape with the tokenizer scripts/deps.sh installs), on random rows whose
// best token the grammar mostly refuses (random: no allowed token near the
// top, pick's worst case; near-top: one ranks second to tenth, as in a
// trained model's rows): pick's search of the best candidates against
// masking the whole row.
func BenchmarkGrammarPick(b *testing.B) {
	tp := synth.FindTokenizer()
	if tp == "" {
		b.Skip("no Qwen2.5 tokenizer.json: run scripts/deps.sh")
	}
	tok, err := synth.LoadTokenizer(tp)
	if err != nil {
		b.Fatal(err)
	}
	shape, _ := synth.LookupShape("tiny")
	path := filepath.Join(b.TempDir(), "qwen-tiny.gguf")
	if err := synth.Write(context.Background(), path, synth.Options{Shape: shape, DType: synth.F32, Seed: 1, Tokenizer: tok}); err != nil {
		b.Fatal(err)
	}
	e, err := New(context.Background(), Config{ModelPath: path, ModelName: "qwen-tiny", Threads: 1, Parallel: 1, ContextPerSlot: 256})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	src, err := SchemaGrammar([]byte(`{"type": "object", "properties": {"name": {"enum": ["read_file", "write_file"]},
		"arguments": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}, "required": ["name", "arguments"]}`))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([][]float32, 16)
	for i := range rows {
		rows[i] = make([]float32, e.nVocab)
		for j := range rows[i] {
			rows[i][j] = float32(rng.NormFloat64() * 3)
		}
	}
	for _, c := range []struct {
		name string
		p    SamplingParams
		pick func(*sampler, []float32, []int) (int, bool)
		near bool // an allowed token ranks second to tenth, as in a trained model's rows
	}{
		{"random/search/greedy", SamplingParams{}, (*sampler).pick, false},
		{"random/full-mask/greedy", SamplingParams{}, pickFullMask, false},
		{"random/search/top_k=40", SamplingParams{Temperature: 1, TopK: 40, TopP: 1, Seed: 1}, (*sampler).pick, false},
		{"random/full-mask/top_k=40", SamplingParams{Temperature: 1, TopK: 40, TopP: 1, Seed: 1}, pickFullMask, false},
		{"near-top/search/greedy", SamplingParams{}, (*sampler).pick, true},
		{"near-top/full-mask/greedy", SamplingParams{}, pickFullMask, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var g *llama.Grammar
			var s *sampler
			reset := func() {
				if g != nil {
					g.Free()
				}
				if g, err = e.newGrammar(src); err != nil {
					b.Fatal(err)
				}
				s = newSampler(c.p)
				s.grammar, s.ends = g, e.ends
			}
			reset()
			defer func() { g.Free() }()
			row := make([]float32, e.nVocab)
			td := make([]llama.TokenData, e.nVocab)
			for i := 0; i < b.N; i++ {
				copy(row, rows[i%len(rows)])
				if c.near {
					b.StopTimer()
					for j, l := range row {
						td[j] = llama.TokenData{ID: int32(j), Logit: l}
					}
					s.grammar.Apply(td) // the allowed tokens now; the state does not move
					var allowed []int
					for j := range td {
						if !math.IsInf(float64(td[j].Logit), -1) {
							allowed = append(allowed, j)
						}
					}
					best := row[argmax(row)]
					row[allowed[rng.IntN(len(allowed))]] = best - float32(1+rng.IntN(9))*1e-3
					b.StartTimer()
				}
				t, ok := c.pick(s, row, nil)
				if !ok || e.ends[t] {
					reset()
				}
			}
		})
	}
}
