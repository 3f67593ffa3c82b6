package api_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/api/ollama"
	"github.com/qwend/qwend/api/openai"
	"github.com/qwend/qwend/engine"
)

// Null means absent, in every field of every request type, at any depth:
// a body with a field set to null decodes to the same request, and maps
// to the same engine request or the same 400, as the body without the
// field. The fields are found by reflection over the request types' JSON
// names, so a field added later is covered without a new case.
func TestNullIsAbsent(t *testing.T) {
	for _, rt := range []struct {
		name    string
		body    string
		decode  func([]byte) (any, *engine.Request, *api.Error)
		typ     reflect.Type
		mustSee []string // paths that must be among those tried
	}{
		{"openai chat", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`,
			func(b []byte) (any, *engine.Request, *api.Error) {
				var in openai.ChatRequest
				return mapped(&in, b, func() (*engine.Request, *api.Error) { return openai.ChatToEngine(&in, "id", false) })
			}, reflect.TypeFor[openai.ChatRequest](),
			[]string{"stop", "stream_options", "stream_options.include_usage", "user", "n", "seed", "max_tokens", "temperature", "top_p", "messages[0].content", "metadata"}},
		{"openai completion", `{"prompt":"hi","max_tokens":4}`,
			func(b []byte) (any, *engine.Request, *api.Error) {
				var in openai.CompletionRequest
				return mapped(&in, b, func() (*engine.Request, *api.Error) { return openai.CompletionToEngine(&in, "id", false) })
			}, reflect.TypeFor[openai.CompletionRequest](),
			[]string{"stop", "stream_options", "prompt", "suffix", "seed"}},
		{"ollama generate", `{"prompt":"hi","options":{"num_predict":4}}`,
			func(b []byte) (any, *engine.Request, *api.Error) {
				var in ollama.GenerateRequest
				return mapped(&in, b, func() (*engine.Request, *api.Error) { return ollama.GenerateToEngine(&in, "id", false) })
			}, reflect.TypeFor[ollama.GenerateRequest](),
			[]string{"options", "options.stop", "options.num_predict", "options.seed", "keep_alive", "stream", "system"}},
		{"ollama chat", `{"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":4}}`,
			func(b []byte) (any, *engine.Request, *api.Error) {
				var in ollama.ChatRequest
				return mapped(&in, b, func() (*engine.Request, *api.Error) { return ollama.ChatToEngine(&in, "id", false) })
			}, reflect.TypeFor[ollama.ChatRequest](),
			[]string{"options.stop", "options.temperature", "keep_alive", "messages[0].content"}},
	} {
		t.Run(rt.name, func(t *testing.T) {
			paths := jsonPaths(rt.typ, nil)
			var names []string
			for _, p := range paths {
				names = append(names, pathName(p))
			}
			for _, want := range rt.mustSee {
				if !slices.Contains(names, want) {
					t.Errorf("path %s not found among %v", want, names)
				}
			}
			for _, p := range paths {
				null, absent := withPath(t, rt.body, p, true), withPath(t, rt.body, p, false)
				inN, reqN, errN := rt.decode(null)
				inA, reqA, errA := rt.decode(absent)
				switch {
				case (errN == nil) != (errA == nil) || (errN != nil && errN.Message != errA.Message):
					t.Errorf("%s: null gives %v, absent %v\n null:   %s\n absent: %s", pathName(p), errN, errA, null, absent)
				case !reflect.DeepEqual(normalize(inN), normalize(inA)):
					t.Errorf("%s: null decodes to %+v, absent to %+v", pathName(p), inN, inA)
				case !reflect.DeepEqual(unseeded(reqN), unseeded(reqA)):
					t.Errorf("%s: null maps to %+v, absent to %+v", pathName(p), reqN, reqA)
				}
			}
			t.Logf("%d fields: %s", len(names), strings.Join(names, " "))
		})
	}
}

// mapped decodes b into in and maps it, as a handler does.
func mapped(in any, b []byte, toEngine func() (*engine.Request, *api.Error)) (any, *engine.Request, *api.Error) {
	if aerr := api.DecodeJSON(b, in); aerr != nil {
		return in, nil, aerr
	}
	req, aerr := toEngine()
	return in, req, aerr
}

// unseeded clears what differs between two mappings of one request: the
// clock's seed when the client gave none.
func unseeded(r *engine.Request) *engine.Request {
	if r == nil {
		return nil
	}
	c := *r
	if !c.HasSeed {
		c.Sampling.Seed = 0
	}
	return &c
}

// normalize is the decoded request with raw JSON values of null made
// absent (a raw field keeps the bytes it was given).
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	c := reflect.New(rv.Elem().Type())
	c.Elem().Set(rv.Elem())
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Uint8 && string(v.Bytes()) == "null" && v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
		}
	}
	walk(c.Elem())
	return c.Interface()
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// jsonPaths lists the JSON paths of every field of t: embedded structs
// are inlined, structs and pointers to structs are entered, slices of
// structs through their first element ("0"). A type that decodes itself
// (UnmarshalJSON) is a leaf.
func jsonPaths(t reflect.Type, prefix []string) [][]string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || opts == "embed" { // the catch-all for unknown keys
			continue
		}
		ft := f.Type
		if f.Anonymous && name == "" {
			out = append(out, jsonPaths(ft, prefix)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := append(slices.Clone(prefix), name)
		out = append(out, p)
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if reflect.PointerTo(ft).Implements(unmarshaler) {
			continue
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, jsonPaths(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !reflect.PointerTo(ft.Elem()).Implements(unmarshaler):
			out = append(out, jsonPaths(ft.Elem(), append(slices.Clone(p), "0"))...)
		}
	}
	return out
}

func pathName(p []string) string {
	var b strings.Builder
	for _, s := range p {
		if s == "0" {
			b.WriteString("[0]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// withPath returns body with the field at path set to null (null) or
// removed (!null); missing objects and first elements on the way are
// made empty in both.
func withPath(t *testing.T, body string, path []string, null bool) []byte {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(body), &root); err != nil {
		t.Fatal(err)
	}
	cur := root
	for i, key := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if null {
					c[key] = nil
				} else {
					delete(c, key)
				}
				continue
			}
			next, ok := c[key]
			if !ok || next == nil {
				if path[i+1] == "0" {
					next = []any{}
				} else {
					next = map[string]any{}
				}
				c[key] = next
			}
			if path[i+1] == "0" {
				if l, _ := next.([]any); len(l) == 0 {
					next = []any{map[string]any{}}
					c[key] = next
				}
			}
			cur = next
		case []any:
			cur = c[0]
		default:
			t.Fatalf("path %v: %T on the way", path, cur)
		}
	}
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
