package openai

import (
	"fmt"
	"regexp"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/chat"
	"github.com/qwend/qwend/engine"
)

// RawJSON is a JSON value kept as sent; null reads as absent (nil).
type RawJSON = api.RawJSON

// Tool is one entry of a chat request's tools: {"type": "function",
// "function": {"name", "description", "parameters", "strict"}}. The
// object reaches the chat template as the client sent it.
type Tool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string  `json:"name"`
		Description string  `json:"description"`
		Parameters  RawJSON `json:"parameters"`
		Strict      *bool   `json:"strict"`
	} `json:"function"`
	raw jsontext.Value
}

// functionName is OpenAI's rule for function names.
var functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// UnmarshalJSON keeps the object as sent and checks it is a function with
// a valid name and an object (or no) parameters schema.
func (t *Tool) UnmarshalJSON(b []byte) error {
	type plain Tool
	var p plain
	if err := api.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Type != "function" {
		return &api.FieldError{Field: "type", Sub: ".type", Msg: fmt.Sprintf("%q tools are not supported; only function tools are", p.Type)}
	}
	if !functionName.MatchString(p.Function.Name) {
		return &api.FieldError{Field: "function.name", Sub: ".function.name", Msg: "want 1 to 64 letters, digits, underscores or dashes"}
	}
	if k := jsontext.Value(p.Function.Parameters).Kind(); len(p.Function.Parameters) > 0 && k != '{' {
		return &api.FieldError{Field: "function.parameters", Sub: ".function.parameters", Msg: "want a JSON schema object"}
	}
	*t = Tool(p)
	t.raw = append(jsontext.Value(nil), b...)
	return nil
}

// ToolChoice is "none", "auto", "required", or {"type": "function",
// "function": {"name": ...}} (Name set).
type ToolChoice struct {
	Mode string // none, auto, required, or function
	Name string // the function forced when Mode is function
}

// UnmarshalJSON accepts the string and object forms.
func (c *ToolChoice) UnmarshalJSON(b []byte) error {
	if ok, err := c.readMode(b); ok {
		return err
	}
	var o struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := api.Unmarshal(b, &o); err != nil || o.Type != "function" || o.Function.Name == "" {
		return &api.FieldError{Field: "tool_choice", Msg: `want "none", "auto", "required" or {"type": "function", "function": {"name": ...}}`}
	}
	c.Mode, c.Name = "function", o.Function.Name
	return nil
}

// readMode reads the string form ("none", "auto", "required") into
// c.Mode; ok is false when b is not a string (an object form).
func (c *ToolChoice) readMode(b []byte) (ok bool, err error) {
	var s string
	if api.Unmarshal(b, &s) != nil {
		return false, nil
	}
	switch s {
	case "none", "auto", "required":
		c.Mode = s
		return true, nil
	}
	return true, &api.FieldError{Field: "tool_choice", Msg: fmt.Sprintf("%q is not none, auto, required or a function", s)}
}

// ResponseFormat is {"type": "text"}, {"type": "json_object"} or {"type":
// "json_schema", "json_schema": {"name", "description", "schema",
// "strict"}}.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string  `json:"name"`
		Description string  `json:"description"`
		Schema      RawJSON `json:"schema"`
		Strict      *bool   `json:"strict"`
	} `json:"json_schema"`
}

// MessageToolCall is a tool call in an assistant message of the request.
type MessageToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// toolOutput is how a chat answer is read for tool calls: nil when the
// request offered no tools (or tool_choice none), so that the text is
// content as it is.
type toolOutput struct {
	maxCalls int // 0: any number
	parser   chat.ToolCallParser
}

// applyTools puts the tools in conv (for the template) and the grammar in
// req (tool_choice required or a function, response_format), and returns
// how the answer is to be read.
func (in *ChatRequest) applyTools(conv *chat.Conversation, req *engine.Request) (*toolOutput, *api.Error) {
	choice := ToolChoice{Mode: "auto"}
	if in.ToolChoice != nil {
		choice = *in.ToolChoice
	}
	if len(in.Tools) == 0 && (choice.Mode == "required" || choice.Mode == "function") {
		return nil, api.BadRequest("field \"tool_choice\": %q needs tools", choice.Mode)
	}
	parallel := in.ParallelToolCalls == nil || *in.ParallelToolCalls
	var out *toolOutput
	if len(in.Tools) > 0 && choice.Mode != "none" {
		out = &toolOutput{}
		if !parallel {
			out.maxCalls = 1
		}
		out.parser.MaxCalls = out.maxCalls
		var fns []chat.Function
		for _, t := range in.Tools {
			conv.Tools = append(conv.Tools, []byte(t.raw))
			if choice.Mode == "required" || t.Function.Name == choice.Name {
				fns = append(fns, chat.Function{Name: t.Function.Name, Parameters: []byte(t.Function.Parameters)})
			}
		}
		if choice.Mode == "function" && len(fns) == 0 {
			return nil, api.BadRequest("field \"tool_choice.function.name\": %q is not one of the tools", choice.Name)
		}
		if len(fns) > 0 {
			g, err := chat.ToolCallGrammar(fns, parallel)
			if err != nil {
				return nil, schemaError("tools", err)
			}
			req.Grammar = g
		}
	}
	if rf := in.ResponseFormat; rf != nil {
		var g string
		switch rf.Type {
		case "text", "":
		case "json_object":
			g = engine.JSONObjectGrammar()
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				return nil, api.BadRequest("field \"response_format.json_schema.schema\": required for type json_schema")
			}
			var err error
			if g, err = engine.SchemaGrammar([]byte(rf.JSONSchema.Schema)); err != nil {
				return nil, schemaError("response_format.json_schema.schema", err)
			}
		default:
			return nil, api.BadRequest("field \"response_format.type\": %q is not text, json_object or json_schema", rf.Type)
		}
		if g != "" && req.Grammar != "" {
			return nil, api.BadRequest("field \"response_format\": cannot constrain the answer while tool_choice forces a tool call")
		}
		if g != "" {
			req.Grammar = g
		}
	}
	return out, nil
}

// schemaError is a 400 naming the field and the schema keyword at fault.
func schemaError(field string, err error) *api.Error {
	return api.BadRequest("field %q: %v", field, err)
}

// message is the whole answer's message: the text as content, or, when
// it holds tool calls, the content around them and the calls; the finish
// reason becomes tool_calls then.
func (o *toolOutput) message(text string, choice map[string]any) map[string]any {
	msg := map[string]any{"role": "assistant", "content": text, "refusal": nil}
	if o == nil {
		return msg
	}
	content, calls := chat.ParseToolCalls(text, o.maxCalls)
	if len(calls) == 0 {
		return msg
	}
	list := make([]any, len(calls))
	for i, c := range calls {
		list[i] = map[string]any{"id": c.ID, "type": "function", "function": map[string]any{"name": c.Name, "arguments": c.Arguments}}
	}
	msg["tool_calls"] = list
	if content == "" {
		msg["content"] = nil
	} else {
		msg["content"] = content
	}
	if choice["finish_reason"] == engine.FinishStop {
		choice["finish_reason"] = "tool_calls"
	}
	return msg
}

// stream wraps a stream's text emitter: text goes to emit once it cannot
// be the start of a tool call; each call goes to call, with its index.
func (o *toolOutput) stream(emit func(string), call func(int, chat.ToolCall)) func(string) {
	if o == nil {
		return emit
	}
	return func(piece string) { o.release(o.parser.Push(piece), emit, call) }
}

// flush releases what the stream held back at its end.
func (o *toolOutput) flush(emit func(string), call func(int, chat.ToolCall)) {
	if o != nil {
		o.release(o.parser.Flush(), emit, call)
	}
}

func (o *toolOutput) release(evs []chat.Event, emit func(string), call func(int, chat.ToolCall)) {
	for _, ev := range evs {
		if ev.Call != nil {
			call(o.parser.Calls()-1, *ev.Call)
		} else if ev.Text != "" {
			emit(ev.Text)
		}
	}
}

// calls is how many tool calls the stream released.
func (o *toolOutput) calls() int {
	if o == nil {
		return 0
	}
	return o.parser.Calls()
}

// toolCallDelta is a streamed tool call: its index, id, name and whole
// arguments in one delta.
func toolCallDelta(i int, c chat.ToolCall) map[string]any {
	return map[string]any{"index": i, "id": c.ID, "type": "function",
		"function": map[string]any{"name": c.Name, "arguments": c.Arguments}}
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
