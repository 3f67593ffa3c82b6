package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ollama/ollama/llama"
)

// Grammar-constrained decoding: Request.Grammar holds a GBNF grammar
// (llama.cpp's format); every token sampled must keep the output a prefix
// of a sentence of the grammar, and the generation can only end once the
// output is a whole sentence. SchemaGrammar builds such a grammar from a
// JSON schema with llama.cpp's converter.

// SchemaError is a JSON schema qwend will not convert: a keyword the
// converter does not implement (it would silently loosen the grammar), a
// value out of the bounds it can handle, or nesting too deep. Keyword names
// the schema keyword at fault; Path is where it is (properties.a.items).
type SchemaError struct {
	Keyword string
	Path    string
	Msg     string
}

func (e *SchemaError) Error() string {
	where := ""
	if e.Path != "" {
		where = " at " + e.Path
	}
	if e.Keyword == "" {
		return "schema" + where + ": " + e.Msg
	}
	return fmt.Sprintf("schema keyword %q%s: %s", e.Keyword, where, e.Msg)
}

// Bounds on what a schema may ask of the converter, so that a hostile
// schema cannot exhaust memory or the C++ stack.
const (
	// MaxSchemaDepth bounds the nesting of a schema's JSON (objects and
	// arrays), checked before the schema reaches llama.cpp.
	MaxSchemaDepth = 32
	// maxSchemaCount bounds minItems, maxItems, minLength, maxLength and
	// the repetition counts in patterns: the grammar expands each
	// repetition into rules.
	maxSchemaCount = 1000
	// maxSchemaBytes bounds the schema's size.
	maxSchemaBytes = 256 << 10
)

// schema keywords by how the converter reads them
var (
	// annotations: ignored, and so harmless
	schemaAnnotations = set("$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "strict", "discriminator", "nullable")
	// keywords holding one subschema, a list of them, or a map of them
	schemaOne  = set("additionalProperties", "items")
	schemaList = set("anyOf", "oneOf", "allOf", "prefixItems")
	schemaMap  = set("properties", "$defs", "definitions")
	// keywords with plain values the converter implements
	schemaValues = set("type", "required", "enum", "const", "$ref", "format", "pattern",
		"minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
	schemaCounts  = set("minItems", "maxItems", "minLength", "maxLength")
	schemaFormats = set("date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5")
	schemaTypes   = set("string", "number", "integer", "boolean", "object", "array", "null")
)

func set(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, k := range s {
		m[k] = true
	}
	return m
}

// SchemaGrammar converts a JSON schema to a GBNF grammar for
// Request.Grammar. Errors: *SchemaError for a schema it refuses (an
// unsupported keyword, a count over 1000, nesting deeper than
// MaxSchemaDepth, more than 256 KiB), or an error saying the converter
// failed. The schema is checked before it reaches llama.cpp.
func SchemaGrammar(schema []byte) (string, error) {
	if len(schema) > maxSchemaBytes {
		return "", &SchemaError{Msg: fmt.Sprintf("over %d bytes", maxSchemaBytes)}
	}
	if err := checkDepth(schema, MaxSchemaDepth); err != nil {
		return "", err
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(schema))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", &SchemaError{Msg: "not JSON: " + err.Error()}
	}
	if _, ok := v.(map[string]any); !ok {
		return "", &SchemaError{Msg: "not a JSON object"}
	}
	if err := checkSchema(v, ""); err != nil {
		return "", err
	}
	g := llama.SchemaToGrammar(schema)
	if g == nil {
		return "", &SchemaError{Msg: "llama.cpp's converter could not turn it into a grammar"}
	}
	return string(g), nil
}

// JSONObjectGrammar is the grammar of any JSON object (OpenAI's
// response_format json_object, Ollama's format "json").
var JSONObjectGrammar = sync.OnceValue(func() string {
	g, err := SchemaGrammar([]byte(`{"type": "object"}`))
	if err != nil {
		panic(err)
	}
	return g
})

// checkDepth refuses JSON nested deeper than max, reading tokens only.
func checkDepth(b []byte, max int) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &SchemaError{Msg: "not JSON: " + err.Error()}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > max {
				return &SchemaError{Msg: fmt.Sprintf("nested deeper than %d levels", max)}
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

var patternCount = regexp.MustCompile(`\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}`)

// checkSchema walks a (sub)schema and refuses what the converter would
// ignore or could not bear.
func checkSchema(v any, path string) error {
	switch s := v.(type) {
	case bool:
		return nil // true: anything; false only makes sense in additionalProperties
	case map[string]any:
		// llama.cpp's converter builds a string from pattern alone and drops
		// the length bounds beside it: refuse what it would not enforce
		if _, ok := s["pattern"]; ok {
			for _, k := range []string{"minLength", "maxLength"} {
				if _, both := s[k]; both {
					return &SchemaError{Keyword: k, Path: path, Msg: "not enforced beside pattern; put the length in the pattern ({m,n})"}
				}
			}
		}
		keys := make([]string, 0, len(s))
		for k := range s {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			val := s[k]
			at := join(path, k)
			switch {
			case schemaAnnotations[k]:
			case schemaOne[k]:
				if l, ok := val.([]any); ok && k == "items" { // the old tuple form
					for i, sub := range l {
						if err := checkSchema(sub, at+"["+strconv.Itoa(i)+"]"); err != nil {
							return err
						}
					}
					continue
				}
				if err := checkSchema(val, at); err != nil {
					return err
				}
			case schemaList[k]:
				l, ok := val.([]any)
				if !ok {
					return &SchemaError{Keyword: k, Path: path, Msg: "want an array of schemas"}
				}
				for i, sub := range l {
					if err := checkSchema(sub, at+"["+strconv.Itoa(i)+"]"); err != nil {
						return err
					}
				}
			case schemaMap[k]:
				m, ok := val.(map[string]any)
				if !ok {
					return &SchemaError{Keyword: k, Path: path, Msg: "want an object of schemas"}
				}
				for name, sub := range m {
					if err := checkSchema(sub, join(at, name)); err != nil {
						return err
					}
				}
			case schemaValues[k]:
				if err := checkValue(k, val, path); err != nil {
					return err
				}
			default:
				return &SchemaError{Keyword: k, Path: path, Msg: "not supported by grammar-constrained decoding"}
			}
		}
		return nil
	}
	return &SchemaError{Path: path, Msg: "a schema must be an object or a boolean"}
}

func checkValue(k string, val any, path string) error {
	bad := func(msg string) error { return &SchemaError{Keyword: k, Path: path, Msg: msg} }
	switch {
	case schemaCounts[k]:
		n, ok := val.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 0 {
			return bad("want a non-negative integer")
		}
		if i > maxSchemaCount {
			return bad(fmt.Sprintf("%d is over %d", i, maxSchemaCount))
		}
	case k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum":
		n, ok := val.(json.Number)
		if !ok {
			return bad("want a number")
		}
		if f, err := n.Float64(); err != nil || math.Abs(f) > 1e15 {
			return bad("want a number within ±1e15")
		}
	case k == "type":
		types := []any{val}
		if l, ok := val.([]any); ok {
			types = l
		}
		for _, t := range types {
			if s, ok := t.(string); !ok || !schemaTypes[s] {
				return bad(fmt.Sprintf("%v is not a JSON schema type", t))
			}
		}
	case k == "format":
		if s, ok := val.(string); !ok || !schemaFormats[s] {
			return bad(fmt.Sprintf("format %v is not supported (supported: date, time, date-time, uuid)", val))
		}
	case k == "pattern":
		s, ok := val.(string)
		if !ok {
			return bad("want a string")
		}
		for _, m := range patternCount.FindAllStringSubmatch(s, -1) {
			for _, d := range m[1:] {
				if n, err := strconv.Atoi(d); err == nil && n > maxSchemaCount || len(d) > 6 {
					return bad(fmt.Sprintf("repetition count %s is over %d", d, maxSchemaCount))
				}
			}
		}
	case k == "$ref":
		if s, ok := val.(string); !ok || !strings.HasPrefix(s, "#/") {
			return bad("only local references (#/$defs/...) are supported")
		}
	case k == "required":
		if _, ok := val.([]any); !ok {
			return bad("want an array of property names")
		}
	case k == "enum":
		if _, ok := val.([]any); !ok {
			return bad("want an array")
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// grammarVocab is the vocabulary as llama.cpp's grammar sampler sees it:
// every token's text, and the tokens that end a generation (allowed only
// once the grammar is complete), whose text is empty.
type grammarVocab struct {
	once   sync.Once
	ids    []uint32
	pieces []string
	ends   []int32
}

// newGrammar compiles src for this model. Errors: ErrClosed, or ErrInvalid
// when the grammar does not parse.
func (e *Engine) newGrammar(src string) (*llama.Grammar, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	gv := &e.gvocab
	gv.once.Do(func() {
		gv.ids, gv.pieces = make([]uint32, e.nVocab), make([]string, e.nVocab)
		for tok := range e.nVocab {
			gv.ids[tok] = uint32(tok)
			if e.ends[tok] {
				gv.ends = append(gv.ends, int32(tok))
				continue
			}
			gv.pieces[tok] = grammarPiece(e.model.TokenToPiece(tok))
		}
	})
	g := llama.NewGrammar(src, gv.ids, gv.pieces, gv.ends)
	if g == nil {
		return nil, fmt.Errorf("%w: the grammar does not parse", ErrInvalid)
	}
	return g, nil
}

// grammarPiece is a token's text for the grammar sampler: "" (never
// allowed) when it holds a byte that cannot occur in UTF-8 (C0, C1, F5 to
// FF), which llama.cpp's decoder would read as the start of a character and
// let through as one.
func grammarPiece(p string) string {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == 0xC0 || c == 0xC1 || c >= 0xF5 {
			return ""
		}
	}
	return p
}

// errGrammarDead: no token can continue the grammar (a grammar that cannot
// be completed with this vocabulary).
var errGrammarDead = errors.New("no token can continue the grammar")

// pick draws the next token. Without a grammar it is sample. With one,
// the sampler's first choice is kept when the grammar allows it (the
// common case, one check); otherwise the best candidates are checked
// first: greedy decoding needs the best allowed token, top-k sampling the
// k best, so when enough of the row's best max(64, 4k) are allowed they
// give the same draw as masking the whole row (llama.cpp's resampling) for
// a few hundredth of its cost on a 151,936-token vocabulary; when not (or
// without top_k) the whole row is masked, as llama.cpp does. The grammar then accepts the
// token (end tokens excepted: they end the sequence). ok is false when the
// grammar allows no token.
func (s *sampler) pick(logits []float32, recent []int) (tok int, ok bool) {
	if s.grammar == nil {
		return s.sample(logits, recent), true
	}
	s.penalize(logits, recent)
	tok = s.choose(logits)
	if s.allowed(tok) {
		s.accept(tok)
		return tok, true
	}
	want := 1 // greedy: the best allowed token
	if s.p.Temperature > 0 {
		want = s.p.TopK
		if want >= len(logits) {
			want = 0
		}
	}
	if want > 0 && want*4 < len(logits) {
		k := max(64, 4*want)
		c := topK(s.cands[:0], logits, k)
		td := s.td[:0]
		for _, x := range c {
			td = append(td, llama.TokenData{ID: x.id, Logit: x.logit})
		}
		s.grammar.Apply(td)
		s.td, s.cands = td, c
		allowed := c[:0] // in place: never ahead of the reading
		for i, x := range c {
			if !math.IsInf(float64(td[i].Logit), -1) {
				allowed = append(allowed, x)
				if len(allowed) == want {
					break
				}
			}
		}
		if len(allowed) == want {
			tok = int(allowed[0].id)
			if s.p.Temperature > 0 {
				tok = s.draw(allowed)
			}
			s.accept(tok)
			return tok, true
		}
	}
	td := s.td[:0]
	for i, l := range logits {
		td = append(td, llama.TokenData{ID: int32(i), Logit: l})
	}
	s.grammar.Apply(td)
	s.td = td
	live := false
	for i := range td {
		logits[i] = td[i].Logit
		live = live || !math.IsInf(float64(td[i].Logit), -1)
	}
	if !live {
		return 0, false
	}
	// the penalties and biases are in the row already
	tok = s.choose(logits)
	if math.IsInf(float64(logits[tok]), -1) {
		return 0, false
	}
	s.accept(tok)
	return tok, true
}

func (s *sampler) allowed(tok int) bool {
	one := []llama.TokenData{{ID: int32(tok)}}
	s.grammar.Apply(one)
	return !math.IsInf(float64(one[0].Logit), -1)
}

func (s *sampler) accept(tok int) {
	if tok >= 0 && tok < len(s.ends) && s.ends[tok] {
		return
	}
	s.grammar.Accept(int32(tok))
}
