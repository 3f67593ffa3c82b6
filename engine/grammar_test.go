package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
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
