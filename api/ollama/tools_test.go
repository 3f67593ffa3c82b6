package ollama_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/qwend/qwend/api/apitest"
)

const formatSchema = `{"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["ok", "n"], "additionalProperties": false}`

// format: a schema makes the answer validate against it, in /api/chat and
// /api/generate, whole and streamed; "json" makes it open an object.
func TestFormat(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, register)
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(formatSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	opts := `"options": {"temperature": 0, "num_predict": 300}`
	for _, tc := range []struct{ path, body string }{
		{"/api/chat", `{"messages": [{"role": "user", "content": "x"}], "stream": false, "format": ` + formatSchema + `, ` + opts + `}`},
		{"/api/generate", `{"prompt": "x", "stream": false, "format": ` + formatSchema + `, ` + opts + `}`},
		{"/api/chat", `{"messages": [{"role": "user", "content": "x"}], "format": ` + formatSchema + `, ` + opts + `}`},
	} {
		resp, b := ts.Post(t, tc.path, tc.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, b)
		}
		var text strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var r struct {
				Response   string `json:"response"`
				Message    struct{ Content string }
				DoneReason string `json:"done_reason"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			text.WriteString(r.Response + r.Message.Content)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(text.String()))
		if err != nil {
			t.Fatalf("%s: %q does not parse: %v", tc.path, text.String(), err)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("%s: %q does not validate: %v", tc.path, text.String(), err)
		}
	}
	resp, b := ts.Post(t, "/api/generate", `{"prompt": "x", "stream": false, "format": "json", "options": {"num_predict": 20}}`)
	var r struct{ Response string }
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(strings.TrimSpace(r.Response), "{") {
		t.Errorf("format json: %d %s", resp.StatusCode, b)
	}
}

// A format or tool qwend cannot honour is a 400 in Ollama's shape, naming
// it.
func TestFormatAndToolRefusals(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	msgs := `"messages": [{"role": "user", "content": "x"}], "stream": false`
	for _, tc := range []struct{ body, mention string }{
		{`{` + msgs + `, "format": {"type": "object", "patternProperties": {}}}`, `keyword "patternProperties"`},
		{`{` + msgs + `, "format": "yaml"}`, `field "format"`},
		{`{` + msgs + `, "format": 5}`, `field "format"`},
		{`{` + msgs + `, "format": ` + strings.Repeat(`{"items": `, 300) + `{}` + strings.Repeat(`}`, 300) + `}`, "nested deeper"},
		{`{` + msgs + `, "tools": [{"type": "retrieval"}]}`, `tools[0].type`},
	} {
		resp, b := ts.Post(t, "/api/chat", tc.body)
		var r struct{ Error string }
		if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 400 || !strings.Contains(r.Error, tc.mention) {
			t.Errorf("%.60s: %d %s, want a 400 mentioning %s", tc.body, resp.StatusCode, b, tc.mention)
		}
	}
}

// Tools, assistant tool calls (arguments as an object) and tool results
// render through the template and run.
func TestChatWithTools(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 1024}, register)
	body := `{"stream": false, "options": {"num_predict": 3}, "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
		"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
		{"role": "tool", "tool_name": "get_weather", "content": "-3"}]}`
	resp, b := ts.Post(t, "/api/chat", body)
	var r struct {
		Done    bool
		Message struct{ Role string }
	}
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || !r.Done || r.Message.Role != "assistant" {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}
