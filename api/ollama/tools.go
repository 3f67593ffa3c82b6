package ollama

import (
	"encoding/json"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/chat"
	"github.com/qwend/qwend/engine"
)

// RawJSON is a JSON value kept as sent; null reads as absent (nil).
type RawJSON = api.RawJSON

// Tool is one entry of /api/chat's tools: {"type": "function",
// "function": {"name", "description", "parameters"}}, passed to the chat
// template as sent.
type Tool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string  `json:"name"`
		Parameters RawJSON `json:"parameters"`
	} `json:"function"`
	raw jsontext.Value
}

// UnmarshalJSON keeps the object as sent and checks it is a named
// function.
func (t *Tool) UnmarshalJSON(b []byte) error {
	type plain Tool
	var p plain
	if err := api.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Type != "function" {
		return &api.FieldError{Field: "type", Sub: ".type", Msg: fmt.Sprintf("%q tools are not supported; only function tools are", p.Type)}
	}
	if p.Function.Name == "" {
		return &api.FieldError{Field: "function.name", Sub: ".function.name", Msg: "empty"}
	}
	*t = Tool(p)
	t.raw = append(jsontext.Value(nil), b...)
	return nil
}

// ToolCall is a call in Ollama's shape: arguments as an object.
type ToolCall struct {
	Function struct {
		Name      string  `json:"name"`
		Arguments RawJSON `json:"arguments"`
	} `json:"function"`
}

// toolOutput reads a chat answer for tool calls; nil when the request
// offered no tools.
type toolOutput struct {
	parser chat.ToolCallParser
	calls  []chat.ToolCall
}

func toolCallsJSON(calls []chat.ToolCall) []any {
	out := make([]any, len(calls))
	for i, c := range calls {
		out[i] = map[string]any{"function": map[string]any{"name": c.Name, "arguments": json.RawMessage(c.Arguments)}}
	}
	return out
}

// message is the whole answer's message: content, and the tool calls it
// held.
func (o *toolOutput) message(text string) map[string]any {
	msg := map[string]any{"role": "assistant", "content": text}
	if o == nil {
		return msg
	}
	content, calls := chat.ParseToolCalls(text, 0)
	if len(calls) > 0 {
		msg["content"], msg["tool_calls"] = content, toolCallsJSON(calls)
	}
	return msg
}

// stream wraps the piece writer: text once it cannot begin a tool call,
// each call in its own object.
func (o *toolOutput) stream(text func(string), call func(chat.ToolCall)) func(string) {
	if o == nil {
		return text
	}
	return func(p string) { o.release(o.parser.Push(p), text, call) }
}

func (o *toolOutput) flush(text func(string), call func(chat.ToolCall)) {
	if o != nil {
		o.release(o.parser.Flush(), text, call)
	}
}

func (o *toolOutput) release(evs []chat.Event, text func(string), call func(chat.ToolCall)) {
	for _, ev := range evs {
		if ev.Call != nil {
			call(*ev.Call)
		} else if ev.Text != "" {
			text(ev.Text)
		}
	}
}

// formatGrammar is the grammar of Ollama's format: "json" (any object) or
// a JSON schema; absent, null or "" is none.
func formatGrammar(format RawJSON) (string, *api.Error) {
	switch jsontext.Value(format).Kind() {
	case 0, 'n':
		return "", nil
	case '"':
		var s string
		_ = api.Unmarshal(format, &s)
		switch s {
		case "":
			return "", nil
		case "json":
			return engine.JSONObjectGrammar(), nil
		}
		return "", api.BadRequest("field \"format\": %q is not \"json\" or a JSON schema", s)
	case '{':
		g, err := engine.SchemaGrammar(format)
		if err != nil {
			return "", api.BadRequest("field \"format\": %v", err)
		}
		return g, nil
	}
	return "", api.BadRequest("field \"format\": want \"json\" or a JSON schema object")
}

// templateFor is the served model's chat template (ChatML before the
// model is loaded: the request then fails as loading anyway).
func templateFor(x *api.Exchange) (*chat.Template, *api.Error) {
	e := x.Server().Engine()
	if e == nil {
		return chat.ChatML, nil
	}
	t, err := chat.ForModel(e.Info().ChatTemplate)
	if err != nil {
		return nil, api.Internal("the model's chat template: " + err.Error())
	}
	return t, nil
}
