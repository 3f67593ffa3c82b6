package openai_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/api/apitest"
	"github.com/qwend/qwend/api/openai"
	"github.com/qwend/qwend/engine"
)

const responsesPath = "/v1/responses"

// flatTools are tools_test.go's twoTools in the Responses shape.
const flatTools = `[{"type": "function", "name": "get_weather", "description": "Weather <|im_end|> in a city", "parameters": ` + weatherParams + `, "strict": true},
	{"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]}, "strict": null}]`

var (
	responseUsageShape = shape{keys: []string{"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"},
		nested: map[string]shape{"input_tokens_details": {keys: []string{"cached_tokens"}}}}
	responseShape = shape{
		keys: []string{"id", "object", "created_at", "status", "model", "output", "usage", "error", "incomplete_details",
			"instructions", "metadata", "parallel_tool_calls", "temperature", "tool_choice", "tools", "top_p", "text"},
		nulls:  []string{"error"},
		nested: map[string]shape{"usage": responseUsageShape},
	}
	inProgressShape   = shape{keys: responseShape.keys, nulls: []string{"error", "usage"}}
	messageItemShape  = shape{keys: []string{"type", "id", "role", "status", "content"}, nested: map[string]shape{"content": {keys: []string{"type", "text", "annotations"}}}}
	callItemShape     = shape{keys: []string{"type", "id", "call_id", "name", "arguments", "status"}}
	responseErrorKeys = shape{keys: []string{"error"}, nested: map[string]shape{"error": {keys: []string{"message", "type", "param", "code"}}}}
)

type responseObject struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Status            string `json:"status"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Output []struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Role    string `json:"role"`
		Status  string `json:"status"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"output"`
	Usage *struct {
		InputTokens        int `json:"input_tokens"`
		OutputTokens       int `json:"output_tokens"`
		TotalTokens        int `json:"total_tokens"`
		InputTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
	} `json:"usage"`
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// text is the output's message text.
func (r *responseObject) text() string {
	var b strings.Builder
	for _, o := range r.Output {
		for _, c := range o.Content {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// sse is one server-sent event of a Responses stream.
type sse struct {
	name string // the event: line
	data map[string]any
	raw  string
}

// readEvents reads a Responses stream: every event has an event: line
// that matches its data's type, and sequence numbers that count from 0.
func readEvents(t *testing.T, b []byte) []sse {
	t.Helper()
	var out []sse
	for _, block := range strings.Split(strings.TrimSpace(string(b)), "\n\n") {
		if strings.HasPrefix(block, ":") { // a keep-alive comment
			continue
		}
		name, data, ok := strings.Cut(block, "\n")
		name, ok1 := strings.CutPrefix(name, "event: ")
		data, ok2 := strings.CutPrefix(data, "data: ")
		if !ok || !ok1 || !ok2 {
			t.Fatalf("event %q: want an event: line and a data: line", block)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("event %q: %v", block, err)
		}
		if m["type"] != name {
			t.Errorf("event %q has type %v", name, m["type"])
		}
		if m["sequence_number"] != float64(len(out)) {
			t.Errorf("event %d (%s): sequence_number %v", len(out), name, m["sequence_number"])
		}
		out = append(out, sse{name: name, data: m, raw: data})
	}
	return out
}

func decodeResponse(t *testing.T, b []byte) responseObject {
	t.Helper()
	var r responseObject
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return r
}

// A whole response: its object's shape, a message item with the text, the
// usage adding up and matching the one record the request left, and
// status incomplete when max_output_tokens ran out.
func TestResponsesWhole(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	resp, b := ts.Post(t, responsesPath, `{"model": "tiny", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 5, "temperature": 0, "metadata": {"feature": "f1"}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	m := decodeObject(t, b)
	responseShape.check(t, "response", m)
	for _, it := range m["output"].([]any) {
		messageItemShape.check(t, "output", it)
	}
	if m["instructions"] != "Be brief." || m["model"] != "tiny" || m["tool_choice"] != "auto" || m["temperature"] != 0.0 || m["top_p"] != 1.0 ||
		m["parallel_tool_calls"] != true || m["max_output_tokens"] != 5.0 || m["store"] != false {
		t.Errorf("echoed settings: %s", b)
	}
	r := decodeResponse(t, b)
	if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.Status != "incomplete" ||
		r.IncompleteDetails == nil || r.IncompleteDetails.Reason != "max_output_tokens" {
		t.Errorf("response %s", b)
	}
	if len(r.Output) != 1 || r.Output[0].Type != "message" || r.Output[0].Role != "assistant" || r.Output[0].Status != "incomplete" ||
		!strings.HasPrefix(r.Output[0].ID, "msg_") || len(r.Output[0].Content) != 1 || r.Output[0].Content[0].Type != "output_text" {
		t.Errorf("output %s", b)
	}
	u := r.Usage
	if u == nil || u.OutputTokens != 5 || u.InputTokens < 5 || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Fatalf("usage %s", b)
	}
	recs := ts.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	rec := recs[0]
	if rec.Endpoint != "POST /v1/responses" || rec.Operation != engine.OperationChat || rec.Status != 200 || rec.ErrorType != "" ||
		rec.Result.PromptTokens != u.InputTokens || rec.Result.OutputTokens != u.OutputTokens || rec.Identity.Feature != "f1" || rec.Request.ID != r.ID {
		t.Errorf("record %+v, response %s", rec, b)
	}

	// status and incomplete_details agree whichever way the answer ends
	resp, b = ts.Post(t, responsesPath, `{"input": [{"role": "user", "content": "hi"}], "max_output_tokens": 400, "temperature": 0}`)
	if r := decodeResponse(t, b); resp.StatusCode != 200 || (r.Status == "completed") != (r.IncompleteDetails == nil) || (r.Status == "incomplete") != (r.Usage.OutputTokens == 400) {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}

// A streamed response is the Responses event sequence, its deltas add up
// to the text the whole response has for the same greedy request, and
// response.incomplete carries the same usage.
func TestResponsesStreamAgreesWithWhole(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	body := `{"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "count"}, {"type": "input_text", "text": "to ten"}]}], "max_output_tokens": 9, "temperature": 0%s}`
	_, b := ts.Post(t, responsesPath, strings.Replace(body, "%s", "", 1))
	whole := decodeResponse(t, b)
	resp, b := ts.Post(t, responsesPath, strings.Replace(body, "%s", `, "stream": true`, 1))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	evs := readEvents(t, b)
	var names []string
	var deltas strings.Builder
	for _, e := range evs {
		if n := len(names); n == 0 || names[n-1] != e.name {
			names = append(names, e.name)
		}
		if e.name == "response.output_text.delta" {
			deltas.WriteString(e.data["delta"].(string))
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("events %v, want %v", names, want)
	}
	if deltas.String() != whole.text() {
		t.Errorf("streamed %q, whole %q", deltas.String(), whole.text())
	}
	for _, e := range evs {
		switch e.name {
		case "response.created", "response.in_progress":
			inProgressShape.check(t, e.name, e.data["response"])
			if r := e.data["response"].(map[string]any); r["status"] != "in_progress" || len(r["output"].([]any)) != 0 {
				t.Errorf("%s: %s", e.name, e.raw)
			}
		case "response.output_text.done":
			if e.data["text"] != whole.text() {
				t.Errorf("done text %v", e.data["text"])
			}
		case "response.output_item.done":
			messageItemShape.check(t, e.name, e.data["item"])
		}
	}
	var last responseObject
	if err := json.Unmarshal([]byte(evs[len(evs)-1].raw), &struct {
		Response *responseObject `json:"response"`
	}{&last}); err != nil {
		t.Fatal(err)
	}
	if last.Usage != nil {
		last.Usage.InputTokensDetails.CachedTokens = whole.Usage.InputTokensDetails.CachedTokens // the prefix cache's
	}
	if last.Status != "incomplete" || last.text() != whole.text() || last.Usage == nil || *last.Usage != *whole.Usage || last.IncompleteDetails == nil {
		t.Errorf("last event %s, whole usage %+v", evs[len(evs)-1].raw, whole.Usage)
	}
	if recs := ts.Records(); len(recs) != 2 || !recs[1].Stream || recs[1].Status != 200 || recs[1].Result.OutputTokens != 9 {
		t.Errorf("records %+v", recs)
	}
}

// include ["message.output_text.logprobs"] with top_logprobs gives the
// output text part's logprobs, whole, on each streamed delta and on the
// done events, the tokens spelling the text.
func TestResponsesLogprobs(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	body := `{"input": "count", "max_output_tokens": 8, "temperature": 0, "include": ["message.output_text.logprobs"], "top_logprobs": 2%s}`
	spell := func(what string, lps any, top int) string {
		t.Helper()
		list, _ := lps.([]any)
		var b strings.Builder
		for _, e := range list {
			m := e.(map[string]any)
			b.WriteString(m["token"].(string))
			if m["logprob"].(float64) > 0 || len(m["top_logprobs"].([]any)) != top || m["bytes"] == nil {
				t.Errorf("%s: entry %v", what, m)
			}
		}
		return b.String()
	}
	_, b := ts.Post(t, responsesPath, strings.Replace(body, "%s", "", 1))
	var whole struct {
		Output []struct {
			Content []struct {
				Text     string `json:"text"`
				Logprobs any    `json:"logprobs"`
			} `json:"content"`
		} `json:"output"`
	}
	if err := json.Unmarshal(b, &whole); err != nil || len(whole.Output) != 1 || len(whole.Output[0].Content) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	part := whole.Output[0].Content[0]
	if got := spell("whole", part.Logprobs, 2); got != part.Text || got == "" {
		t.Errorf("whole: tokens spell %q, text %q", got, part.Text)
	}
	_, b = ts.Post(t, responsesPath, strings.Replace(body, "%s", `, "stream": true`, 1))
	var deltas, spelled strings.Builder
	done := ""
	for _, e := range readEvents(t, b) {
		switch e.name {
		case "response.output_text.delta":
			deltas.WriteString(e.data["delta"].(string))
			spelled.WriteString(spell("delta", e.data["logprobs"], 2))
		case "response.output_text.done":
			done = spell("done", e.data["logprobs"], 2)
		}
	}
	if deltas.String() != part.Text || spelled.String() != part.Text || done != part.Text {
		t.Errorf("stream: text %q, deltas' tokens %q, done's %q; whole %q", deltas.String(), spelled.String(), done, part.Text)
	}
	// without include, logprobs are empty lists, as before
	_, b = ts.Post(t, responsesPath, `{"input": "count", "max_output_tokens": 2}`)
	if !strings.Contains(string(b), `"logprobs":[]`) {
		t.Errorf("no include: %s", b)
	}
}

// tool_choice required with flat function tools: a function_call item
// whose arguments match the schema, whole and streamed (added, arguments
// delta and done, item done), with the call's id as call_id.
func TestResponsesForcedToolCall(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, openai.Register)
	params := validator(t, weatherParams)
	check := func(where, name, args string) {
		t.Helper()
		switch name {
		case "get_weather":
			validates(t, params, args)
		case "get_time":
			if args != `{"tz":"UTC"}` && args != `{"tz":"CET"}` {
				t.Errorf("%s: arguments %s", where, args)
			}
		default:
			t.Errorf("%s: called %q", where, name)
		}
	}
	for _, choice := range []string{`"required"`, `{"type": "function", "name": "get_time"}`} {
		body := `{"input": "weather?", "tools": ` + flatTools + `, "tool_choice": ` + choice + `, "parallel_tool_calls": false, "max_output_tokens": 600, "temperature": 1, "seed": 3%s}`
		resp, b := ts.Post(t, responsesPath, strings.Replace(body, "%s", "", 1))
		r := decodeResponse(t, b)
		if resp.StatusCode != 200 || r.Status != "completed" || len(r.Output) != 1 || r.Output[0].Type != "function_call" {
			t.Fatalf("%s: %d %s", choice, resp.StatusCode, b)
		}
		m := decodeObject(t, b)
		callItemShape.check(t, "output", m["output"].([]any)[0])
		if tools := m["tools"].([]any); len(tools) != 2 || tools[0].(map[string]any)["name"] != "get_weather" {
			t.Errorf("tools echo %v", m["tools"])
		}
		o := r.Output[0]
		if !strings.HasPrefix(o.CallID, "call_") || !strings.HasPrefix(o.ID, "fc_") || o.Status != "completed" ||
			(choice != `"required"` && o.Name != "get_time") {
			t.Errorf("%s: call %+v", choice, o)
		}
		check(choice, o.Name, o.Arguments)

		resp, b = ts.Post(t, responsesPath, strings.Replace(body, "%s", `, "stream": true`, 1))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var names []string
		var added, done map[string]any
		var delta string
		for _, e := range readEvents(t, b) {
			names = append(names, e.name)
			switch e.name {
			case "response.output_item.added":
				added = e.data["item"].(map[string]any)
			case "response.function_call_arguments.delta":
				delta = e.data["delta"].(string)
			case "response.function_call_arguments.done":
				done = e.data
			}
		}
		want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta",
			"response.function_call_arguments.done", "response.output_item.done", "response.completed"}
		if !reflect.DeepEqual(names, want) {
			t.Fatalf("%s: events %v, want %v", choice, names, want)
		}
		if added["type"] != "function_call" || added["status"] != "in_progress" || added["arguments"] != "" || done["arguments"] != delta || done["name"] != added["name"] {
			t.Errorf("%s: added %v, delta %q, done %v", choice, added, delta, done)
		}
		check(choice+" streamed", added["name"].(string), delta)
	}
}

// text.format json_schema constrains the output text to the schema.
func TestResponsesTextFormat(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 2048}, openai.Register)
	schema := `{"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}, "score": {"type": "integer", "minimum": 0, "maximum": 10}}, "required": ["answer", "score"], "additionalProperties": false}`
	resp, b := ts.Post(t, responsesPath, `{"input": "rate it", "max_output_tokens": 300, "temperature": 0,
		"text": {"format": {"type": "json_schema", "name": "rating", "strict": true, "schema": `+schema+`}}}`)
	r := decodeResponse(t, b)
	if resp.StatusCode != 200 || r.Status != "completed" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	validates(t, validator(t, schema), r.text())
	if f := decodeObject(t, b)["text"].(map[string]any)["format"].(map[string]any); f["name"] != "rating" || f["type"] != "json_schema" {
		t.Errorf("text.format echo %v", f)
	}
}

// Responses input maps to the chat conversation chat completions renders:
// instructions, messages in text parts, function calls joining the
// assistant turn, outputs as tool turns, flat tools, tool_choice and
// text.format give the same prompt, grammar and limits as the chat
// request with the same content.
func TestResponsesMapToChat(t *testing.T) {
	chatBody := `{"messages": [{"role": "system", "content": "sys"}, {"role": "developer", "content": "dev"},
		{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
		{"role": "assistant", "content": "let me look", "tool_calls": [
			{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"unit\": \"c\"}"}},
			{"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}}]},
		{"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "-3"},
		{"role": "tool", "tool_call_id": "call_2", "name": "get_time", "content": "noon\nCET"},
		{"role": "assistant", "content": "cold"}, {"role": "user", "content": "and now?"}],
		"tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather <|im_end|> in a city", "parameters": ` + weatherParams + `}},
			{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]}}}],
		"tool_choice": {"type": "function", "function": {"name": "get_time"}}, "parallel_tool_calls": false,
		"max_tokens": 77, "temperature": 0.5, "top_p": 0.9}`
	respBody := `{"instructions": "sys", "input": [{"role": "developer", "content": "dev"},
		{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
		{"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [{"type": "output_text", "text": "let me look", "annotations": []}]},
		{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"unit\": \"c\"}", "status": "completed"},
		{"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{\"tz\": \"CET\"}"},
		{"type": "function_call_output", "call_id": "call_1", "output": "-3"},
		{"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}, {"type": "input_text", "text": "CET"}]},
		{"role": "assistant", "content": "cold"}, {"role": "user", "content": "and now?"}],
		"tools": ` + flatTools + `, "tool_choice": {"type": "function", "name": "get_time"}, "parallel_tool_calls": false,
		"max_output_tokens": 77, "temperature": 0.5, "top_p": 0.9}`
	var c openai.ChatRequest
	if aerr := api.DecodeJSON([]byte(chatBody), &c); aerr != nil {
		t.Fatal(aerr)
	}
	want, aerr := openai.ChatToEngine(&c, "x", false)
	if aerr != nil {
		t.Fatal(aerr)
	}
	var r openai.ResponsesRequest
	if aerr := api.DecodeJSON([]byte(respBody), &r); aerr != nil {
		t.Fatal(aerr)
	}
	got, _, aerr := openai.ResponsesToEngine(&r, "x", false)
	if aerr != nil {
		t.Fatal(aerr)
	}
	if !reflect.DeepEqual(got.Segments, want.Segments) {
		t.Errorf("prompt:\n%v\nwant\n%v", got.Segments, want.Segments)
	}
	got.Sampling.Seed, want.Sampling.Seed = 0, 0 // the clock's
	if got.Grammar == "" || got.Grammar != want.Grammar || got.MaxTokens != 77 || !reflect.DeepEqual(got.Sampling, want.Sampling) || got.Operation != engine.OperationChat {
		t.Errorf("request %+v, want %+v", got, want)
	}

	// a string input is one user message; text.format json_object is
	// response_format's grammar
	var s openai.ResponsesRequest
	if aerr := api.DecodeJSON([]byte(`{"input": "hello", "text": {"format": {"type": "json_object"}}}`), &s); aerr != nil {
		t.Fatal(aerr)
	}
	var sc openai.ChatRequest
	if aerr := api.DecodeJSON([]byte(`{"messages": [{"role": "user", "content": "hello"}], "response_format": {"type": "json_object"}}`), &sc); aerr != nil {
		t.Fatal(aerr)
	}
	got, _, aerr = openai.ResponsesToEngine(&s, "x", false)
	want, aerr2 := openai.ChatToEngine(&sc, "x", false)
	if aerr != nil || aerr2 != nil || !reflect.DeepEqual(got.Segments, want.Segments) || got.Grammar == "" || got.Grammar != want.Grammar || got.MaxTokens != 0 {
		t.Errorf("string input: %v %v %+v %+v", aerr, aerr2, got, want)
	}
}

// Null is absent in the Responses request's fields, and the neutral values
// of the fields qwend does not honour are accepted: the same engine
// request as without them.
func TestResponsesNullAndNeutral(t *testing.T) {
	const base = `{"input": [{"role": "user", "content": "hi"}], "tools": ` + flatTools + `, "max_output_tokens": 4`
	mapped := func(body string) *engine.Request {
		t.Helper()
		var r openai.ResponsesRequest
		if aerr := api.DecodeJSON([]byte(body), &r); aerr != nil {
			t.Fatalf("%s: %v", body, aerr)
		}
		req, _, aerr := openai.ResponsesToEngine(&r, "x", false)
		if aerr != nil {
			t.Fatalf("%s: %v", body, aerr)
		}
		req.Sampling.Seed = 0
		return req
	}
	want := mapped(base + `}`)
	for _, extra := range []string{
		`"instructions": null`, `"tool_choice": null`, `"parallel_tool_calls": null`, `"temperature": null`, `"top_p": null`,
		`"text": null`, `"text": {"format": null, "verbosity": null}`, `"text": {"format": {"type": "text"}, "verbosity": "medium"}`,
		`"stream": null`, `"stream_options": null`, `"stream_options": {"include_obfuscation": false}`, `"user": null`, `"metadata": null`, `"model": null`,
		`"store": null`, `"store": false`, `"previous_response_id": null`, `"conversation": null`, `"background": false`, `"include": []`, `"include": null`,
		`"prompt": null`, `"prompt_cache_key": "k"`, `"prompt_cache_retention": "in_memory"`, `"reasoning": null`, `"reasoning": {"effort": null}`,
		`"service_tier": "auto"`, `"service_tier": "default"`, `"top_logprobs": 0`, `"truncation": "disabled"`, `"max_tool_calls": null`,
		`"context_management": []`, `"moderation": null`, `"safety_identifier": null`,
	} {
		got := mapped(base + `, ` + extra + `}`)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("with %s: %+v, want %+v", extra, got, want)
		}
	}
}

// What qwend does not honour is a 400 in OpenAI's error shape naming the
// field (a model not served, a 404), recorded once as invalid_request;
// nothing is silently ignored.
func TestResponsesRefusals(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, openai.Register)
	in := `"input": "x", "max_output_tokens": 2`
	for _, tc := range []struct{ name, body, mention, code string }{
		{"store", `{` + in + `, "store": true}`, `"store"`, "unsupported_parameter"},
		{"previous response", `{` + in + `, "previous_response_id": "resp_1"}`, `"previous_response_id"`, "unsupported_parameter"},
		{"conversation", `{` + in + `, "conversation": "conv_1"}`, `"conversation"`, "unsupported_parameter"},
		{"background", `{` + in + `, "background": true}`, `"background"`, "unsupported_parameter"},
		{"include", `{` + in + `, "include": ["reasoning.encrypted_content"]}`, `"include[0]"`, "unsupported_parameter"},
		{"reasoning", `{` + in + `, "reasoning": {"effort": "high"}}`, `"reasoning"`, "unsupported_parameter"},
		{"truncation", `{` + in + `, "truncation": "auto"}`, `"truncation"`, "unsupported_parameter"},
		{"service tier", `{` + in + `, "service_tier": "flex"}`, `"service_tier"`, "unsupported_parameter"},
		{"top logprobs", `{` + in + `, "top_logprobs": 3}`, `"top_logprobs"`, "unsupported_parameter"},
		{"top logprobs range", `{` + in + `, "include": ["message.output_text.logprobs"], "top_logprobs": 21}`, `"top_logprobs"`, ""},
		{"prompt", `{` + in + `, "prompt": {"id": "pmpt_1"}}`, `"prompt"`, "unsupported_parameter"},
		{"max tool calls", `{` + in + `, "max_tool_calls": 2}`, `"max_tool_calls"`, "unsupported_parameter"},
		{"cache retention", `{` + in + `, "prompt_cache_retention": "24h"}`, `"prompt_cache_retention"`, "unsupported_parameter"},
		{"verbosity", `{` + in + `, "text": {"verbosity": "low"}}`, `"text.verbosity"`, "unsupported_parameter"},
		{"obfuscation", `{` + in + `, "stream_options": {"include_obfuscation": true}}`, `"stream_options.include_obfuscation"`, "unsupported_parameter"},
		{"no input", `{"max_output_tokens": 2}`, `"input"`, ""},
		{"null input", `{"input": null}`, `"input"`, ""},
		{"empty input", `{"input": []}`, `"input"`, ""},
		{"input number", `{"input": 5}`, `"input"`, ""},
		{"reasoning item", `{"input": [{"type": "reasoning", "summary": []}]}`, `"input[0].type"`, ""},
		{"item reference", `{"input": [{"role": "user", "content": "x"}, {"type": "item_reference", "id": "msg_1"}]}`, `"input[1].type"`, ""},
		{"untyped item", `{"input": [{"content": "x"}]}`, `"input[0].type"`, ""},
		{"tool role", `{"input": [{"role": "tool", "content": "x"}]}`, `"input[0].role"`, ""},
		{"no content", `{"input": [{"role": "user"}]}`, `"input[0].content"`, ""},
		{"image part", `{"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": "data:"}]}]}`, `"input[0].content[1].type"`, ""},
		{"call without id", `{"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}`, `"input[0].call_id"`, ""},
		{"call bad name", `{"input": [{"type": "function_call", "call_id": "c", "name": "a b", "arguments": "{}"}]}`, `"input[0].name"`, ""},
		{"output without output", `{"input": [{"type": "function_call_output", "call_id": "c"}]}`, `"input[0].output"`, ""},
		{"deep arguments", `{"input": [{"role": "user", "content": "x"}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "` +
			strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `"}]}`, `"input[1].arguments"`, ""},
		{"hosted tool", `{` + in + `, "tools": [{"type": "web_search"}]}`, `"tools[0].type"`, ""},
		{"nested tool shape", `{` + in + `, "tools": [{"type": "function", "function": {"name": "f"}}]}`, `"tools[0].name"`, ""},
		{"tool deferred", `{` + in + `, "tools": [{"type": "function", "name": "f", "defer_loading": true}]}`, `"tools[0].defer_loading"`, ""},
		{"tool keyword", `{` + in + `, "tool_choice": "required", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {"a": {"not": {}}}}}]}`, `keyword "not"`, ""},
		{"allowed tools", `{` + in + `, "tools": ` + flatTools + `, "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}`, `"tool_choice.type"`, ""},
		{"unknown function", `{` + in + `, "tools": ` + flatTools + `, "tool_choice": {"type": "function", "name": "nope"}}`, `"tool_choice.name"`, ""},
		{"required without tools", `{` + in + `, "tool_choice": "required"}`, `"tool_choice"`, ""},
		{"format type", `{` + in + `, "text": {"format": {"type": "yaml"}}}`, `"text.format.type"`, ""},
		{"format no schema", `{` + in + `, "text": {"format": {"type": "json_schema", "name": "n"}}}`, `"text.format.schema"`, ""},
		{"format keyword", `{` + in + `, "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object", "not": {}}}}}`, `"text.format.schema": schema keyword "not"`, ""},
		{"format and forced call", `{` + in + `, "tools": ` + flatTools + `, "tool_choice": "required", "text": {"format": {"type": "json_object"}}}`, `"text.format"`, ""},
		{"max output tokens", `{"input": "x", "max_output_tokens": 0}`, `"max_output_tokens"`, ""},
		{"temperature", `{"input": "x", "temperature": 3}`, `"temperature"`, ""},
		{"unknown model", `{"input": "x", "model": "gpt-9"}`, `gpt-9`, "model_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.Records())
			status := 400
			if tc.code == "model_not_found" {
				status = 404
			}
			resp, b := ts.Post(t, responsesPath, tc.body)
			if resp.StatusCode != status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, status)
			}
			responseErrorKeys.check(t, "error", decodeObject(t, b))
			r := decodeResponse(t, b)
			if r.Error == nil || r.Error.Type != "invalid_request_error" || !strings.Contains(r.Error.Message, tc.mention) {
				t.Errorf("%s, want a message mentioning %s", b, tc.mention)
			}
			if code := ""; r.Error != nil && r.Error.Code != nil {
				code = *r.Error.Code
				if code != tc.code {
					t.Errorf("code %q, want %q", code, tc.code)
				}
			} else if tc.code != "" {
				t.Errorf("no code, want %q", tc.code)
			}
			recs := ts.Records()[before:]
			if len(recs) != 1 || recs[0].Status != status || recs[0].ErrorType != api.KindInvalid || recs[0].Endpoint != "POST /v1/responses" {
				t.Errorf("records %+v", recs)
			}
		})
	}
}

// A stream cut after its headers (here by the drain deadline) ends with
// an error event and response.failed carrying the error, and is recorded
// as such.
func TestResponsesStreamFailure(t *testing.T) {
	ts := apitest.New(t, apitest.Options{Parallel: 1, ContextPerSlot: 4096}, openai.Register)
	resp, err := http.Post(ts.URL+responsesPath, "application/json", strings.NewReader(`{"input": "long", "max_output_tokens": 4000, "temperature": 0, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "event: response.created\n" {
		t.Fatalf("first line %q: %v", line, err)
	}
	if n := ts.API.Abort(); n != 1 {
		t.Errorf("Abort: %d in flight, want 1", n)
	}
	rest, _ := io.ReadAll(br)
	evs := readEvents(t, append([]byte("event: response.created\n"), rest...))
	n := len(evs)
	if n < 4 || evs[n-2].name != "error" || evs[n-2].data["code"] != api.KindShutdown || evs[n-1].name != "response.failed" {
		t.Fatalf("stream end: %.600s", rest)
	}
	failed := evs[n-1].data["response"].(map[string]any)
	if e, _ := failed["error"].(map[string]any); failed["status"] != "failed" || e["code"] != api.KindShutdown || e["message"] == "" {
		t.Errorf("response.failed: %s", evs[n-1].raw)
	}
	if recs := ts.Records(); len(recs) != 1 || recs[0].ErrorType != api.KindShutdown {
		t.Errorf("records %+v", recs)
	}
}

// The stream's headers go out once the request is admitted, before its
// first token, and response.created with them: here while the only slot
// is busy with another stream.
func TestResponsesHeadersBeforeFirstToken(t *testing.T) {
	ts := apitest.New(t, apitest.Options{Parallel: 1, QueueLength: 2, ContextPerSlot: 4096}, openai.Register)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+responsesPath,
		strings.NewReader(`{"input": "hold", "max_output_tokens": 4000, "temperature": 0, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	a, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	ar := bufio.NewReader(a.Body)
	for { // A is generating once its first delta is here
		line, err := ar.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "event: response.output_text.delta\n" {
			break
		}
	}
	b, err := http.Post(ts.URL+responsesPath, "application/json", strings.NewReader(`{"input": "hi", "max_output_tokens": 3, "stream": true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	if b.StatusCode != 200 || b.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("B: %d %q", b.StatusCode, b.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(b.Body)
	var first bytes.Buffer
	for !strings.Contains(first.String(), "\n\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		first.WriteString(line)
	}
	if !strings.HasPrefix(first.String(), "event: response.created\n") {
		t.Errorf("B's first event %q", first.String())
	}
	cancel()
	// A was cut there, not finished: B's first event did not wait for A's end
	if restA, _ := io.ReadAll(ar); strings.Contains(string(restA), "response.incomplete") {
		t.Error("A ran to its end before B's headers came")
	}
	rest, _ := io.ReadAll(br)
	if evs := readEvents(t, append(first.Bytes(), rest...)); evs[len(evs)-1].name != "response.incomplete" && evs[len(evs)-1].name != "response.completed" {
		t.Errorf("B's stream after the slot freed: %s", rest)
	}
}
