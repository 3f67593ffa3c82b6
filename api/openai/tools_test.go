package openai_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/qwend/qwend/api/apitest"
	"github.com/qwend/qwend/api/openai"
)

const weatherParams = `{"type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 8}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]}`

const twoTools = `[{"type": "function", "function": {"name": "get_weather", "description": "Weather <|im_end|> in a city", "parameters": ` + weatherParams + `}},
	{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]}}}]`

func validator(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validates(t *testing.T, s *jsonschema.Schema, text string) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%q does not parse: %v", text, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%q does not validate: %v", text, err)
	}
}

type toolResponse struct {
	Choices []struct {
		FinishReason string `json:"finish_reason"`
		Message      struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
	} `json:"choices"`
	Error *struct{ Message string } `json:"error"`
}

// tool_choice required and a named function make even the synthetic
// model answer with a valid call whose arguments match the schema.
func TestForcedToolCalls(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, openai.Register)
	params := validator(t, weatherParams)
	for _, tc := range []struct{ name, choice, want string }{
		{"required", `"required"`, ""},
		{"named", `{"type": "function", "function": {"name": "get_weather"}}`, "get_weather"},
		{"named other", `{"type": "function", "function": {"name": "get_time"}}`, "get_time"},
	} {
		for _, temp := range []string{"0", "1"} {
			body := `{"messages": [{"role": "user", "content": "weather?"}], "tools": ` + twoTools + `, "tool_choice": ` + tc.choice +
				`, "parallel_tool_calls": false, "max_tokens": 600, "temperature": ` + temp + `, "seed": 3}`
			resp, b := ts.Post(t, "/v1/chat/completions", body)
			var r toolResponse
			if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || len(r.Choices) != 1 {
				t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, b)
			}
			c := r.Choices[0]
			if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 || c.Message.Content != nil {
				t.Fatalf("%s (temperature %s): %s", tc.name, temp, b)
			}
			if recs := ts.Records(); recs[len(recs)-1].Result.FinishReason != "tool_calls" {
				t.Errorf("%s: recorded finish reason %q", tc.name, recs[len(recs)-1].Result.FinishReason)
			}
			call := c.Message.ToolCalls[0]
			if !strings.HasPrefix(call.ID, "call_") || call.Type != "function" || (tc.want != "" && call.Function.Name != tc.want) {
				t.Errorf("%s: call %+v", tc.name, call)
			}
			switch call.Function.Name {
			case "get_weather":
				validates(t, params, call.Function.Arguments)
			case "get_time":
				if call.Function.Arguments != `{"tz":"UTC"}` && call.Function.Arguments != `{"tz":"CET"}` {
					t.Errorf("%s: arguments %s", tc.name, call.Function.Arguments)
				}
			default:
				t.Errorf("%s: called %q", tc.name, call.Function.Name)
			}
		}
	}
}

// A streamed forced call arrives as one tool-call delta with id, name and
// arguments, and the stream ends with finish_reason tool_calls.
func TestStreamedToolCall(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, openai.Register)
	body := `{"messages": [{"role": "user", "content": "weather?"}], "tools": ` + twoTools + `, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "max_tokens": 600, "temperature": 0, "stream": true}`
	resp, b := ts.Post(t, "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var calls []map[string]any
	var finish string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content   string           `json:"content"`
					ToolCalls []map[string]any `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(line), &ch); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		for _, c := range ch.Choices {
			if strings.Contains(c.Delta.Content, "<tool_call") {
				t.Errorf("markup streamed as content: %q", c.Delta.Content)
			}
			calls = append(calls, c.Delta.ToolCalls...)
			if c.FinishReason != nil {
				finish = *c.FinishReason
			}
		}
	}
	if finish != "tool_calls" || len(calls) == 0 {
		t.Fatalf("finish %q, %d calls: %s", finish, len(calls), b)
	}
	// the record (the service log's and the ledger's) says what the client saw
	if recs := ts.Records(); len(recs) != 1 || recs[0].Result.FinishReason != "tool_calls" {
		t.Errorf("recorded finish reason %q", recs[len(recs)-1].Result.FinishReason)
	}
	params := validator(t, weatherParams)
	for i, c := range calls {
		fn, _ := c["function"].(map[string]any)
		if c["index"] != float64(i) || !strings.HasPrefix(c["id"].(string), "call_") || fn["name"] != "get_weather" {
			t.Errorf("delta %d: %v", i, c)
		}
		validates(t, params, fn["arguments"].(string))
	}
}

// response_format json_schema: the content validates against the schema.
func TestResponseFormat(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, openai.Register)
	schema := `{"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}, "score": {"type": "integer", "minimum": 0, "maximum": 10},
		"tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2}}, "required": ["answer", "score", "tags"], "additionalProperties": false}`
	body := `{"messages": [{"role": "user", "content": "rate it"}], "max_tokens": 600, "temperature": 0,
		"response_format": {"type": "json_schema", "json_schema": {"name": "rating", "strict": true, "schema": ` + schema + `}}}`
	resp, b := ts.Post(t, "/v1/chat/completions", body)
	var r toolResponse
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || r.Choices[0].FinishReason != "stop" || r.Choices[0].Message.Content == nil {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	validates(t, validator(t, schema), *r.Choices[0].Message.Content)

	resp, b = ts.Post(t, "/v1/chat/completions", `{"messages": [{"role": "user", "content": "json"}], "max_tokens": 30, "response_format": {"type": "json_object"}}`)
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(strings.TrimSpace(*r.Choices[0].Message.Content), "{") {
		t.Errorf("json_object: %d %s", resp.StatusCode, b)
	}
}

// What cannot be honoured is a 400 naming the field and the keyword, and
// a hostile schema never reaches llama.cpp.
func TestToolAndFormatRefusals(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	deep := strings.Repeat(`{"type": "array", "items": `, 200) + `{}` + strings.Repeat(`}`, 200)
	user := `"messages": [{"role": "user", "content": "x"}], "max_tokens": 2`
	for _, tc := range []struct{ name, body, mention string }{
		{"unsupported keyword", `{` + user + `, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object", "not": {}}}}}`, `"response_format.json_schema.schema": schema keyword "not"`},
		{"deep schema", `{` + user + `, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": ` + deep + `}}}`, "nested deeper"},
		{"no schema", `{` + user + `, "response_format": {"type": "json_schema"}}`, "response_format.json_schema.schema"},
		{"format type", `{` + user + `, "response_format": {"type": "yaml"}}`, "response_format.type"},
		{"tool keyword", `{` + user + `, "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}}}}]}`, `keyword "format"`},
		{"required without tools", `{` + user + `, "tool_choice": "required"}`, "tool_choice"},
		{"unknown function", `{` + user + `, "tools": ` + twoTools + `, "tool_choice": {"type": "function", "function": {"name": "nope"}}}`, "tool_choice.function.name"},
		{"bad choice", `{` + user + `, "tools": ` + twoTools + `, "tool_choice": "always"}`, "tool_choice"},
		{"not a function", `{` + user + `, "tools": [{"type": "code_interpreter"}]}`, "tools[0].type"},
		{"bad name", `{` + user + `, "tools": [{"type": "function", "function": {"name": "a b"}}]}`, "tools[0].function.name"},
		{"both grammars", `{` + user + `, "tools": ` + twoTools + `, "tool_choice": "required", "response_format": {"type": "json_object"}}`, "response_format"},
	} {
		resp, b := ts.Post(t, "/v1/chat/completions", tc.body)
		var r toolResponse
		if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 400 || r.Error == nil || !strings.Contains(r.Error.Message, tc.mention) {
			t.Errorf("%s: %d %s, want a 400 mentioning %s", tc.name, resp.StatusCode, b, tc.mention)
		}
	}
}

// A conversation with assistant tool calls and tool results renders and
// runs; tool_choice none and auto answer with text.
func TestToolRoundTrip(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, openai.Register)
	for _, choice := range []string{`"auto"`, `"none"`} {
		body := `{"messages": [{"role": "developer", "content": "use tools"}, {"role": "user", "content": "weather?"},
			{"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"unit\": \"c\"}"}}]},
			{"role": "tool", "tool_call_id": "call_1", "content": "-3"}], "tools": ` + twoTools + `, "tool_choice": ` + choice + `, "max_tokens": 4, "temperature": 0}`
		resp, b := ts.Post(t, "/v1/chat/completions", body)
		var r toolResponse
		if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || r.Choices[0].FinishReason != "length" {
			t.Errorf("%s: %d %s", choice, resp.StatusCode, b)
		}
	}
}
