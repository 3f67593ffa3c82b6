package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/chat"
	"github.com/qwend/qwend/engine"
)

// The OpenAI Responses API, stateless (as Ollama serves it): POST
// /v1/responses maps its input items, tools and options to the chat
// request that chat completions renders, so that the template, the
// tool-call parsing and the grammars are the same; only the request and
// response shapes and the stream's events differ. Nothing is stored:
// store true and previous_response_id are refused.

// ResponsesRequest is the body of POST /v1/responses.
type ResponsesRequest struct {
	Model             string               `json:"model"`
	Input             ResponsesInput       `json:"input"`
	Instructions      *string              `json:"instructions"`
	Tools             []ResponsesTool      `json:"tools"`
	ToolChoice        *ResponsesToolChoice `json:"tool_choice"`
	ParallelToolCalls *bool                `json:"parallel_tool_calls"`
	MaxOutputTokens   *int                 `json:"max_output_tokens"`
	Temperature       *float32             `json:"temperature"`
	TopP              *float32             `json:"top_p"`
	Text              *struct {
		Format    *ResponsesTextFormat `json:"format"`
		Verbosity RawJSON              `json:"verbosity"`
	} `json:"text"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeObfuscation *bool `json:"include_obfuscation"`
	} `json:"stream_options"`
	// Who the request is for, as in chat completions.
	User             string            `json:"user"`
	SafetyIdentifier string            `json:"safety_identifier"`
	Metadata         map[string]string `json:"metadata"`
	// PromptCacheKey is accepted: every prompt's prefix is cached anyway.
	PromptCacheKey *string `json:"prompt_cache_key"`

	// Fields of the Responses API that qwend does not honour: each is
	// refused by name unless absent, null or its neutral value (see
	// refuseUnsupported).
	Store                *bool   `json:"store"`
	PreviousResponseID   RawJSON `json:"previous_response_id"`
	Conversation         RawJSON `json:"conversation"`
	Background           RawJSON `json:"background"`
	Include              RawJSON `json:"include"`
	Prompt               RawJSON `json:"prompt"`
	PromptCacheOptions   RawJSON `json:"prompt_cache_options"`
	PromptCacheRetention RawJSON `json:"prompt_cache_retention"`
	ContextManagement    RawJSON `json:"context_management"`
	Moderation           RawJSON `json:"moderation"`
	Reasoning            RawJSON `json:"reasoning"`
	ServiceTier          RawJSON `json:"service_tier"`
	TopLogprobs          RawJSON `json:"top_logprobs"`
	Truncation           RawJSON `json:"truncation"`
	MaxToolCalls         RawJSON `json:"max_tool_calls"`

	// Unknown holds the keys the Responses API does not define: ignored,
	// and logged once.
	Unknown api.Unknown `json:",embed"`

	// Template renders the conversation: the served model's chat template
	// (set by the handler); nil: ChatML.
	Template *chat.Template `json:"-"`
}

// ResponsesInput is the input: a string (one user message) or a list of
// items.
type ResponsesInput struct {
	Set   bool // the field was given (not null)
	Text  *string
	Items []ResponsesItem
}

// UnmarshalJSON accepts a string or an array of items.
func (in *ResponsesInput) UnmarshalJSON(b []byte) error {
	*in = ResponsesInput{}
	switch jsontext.Value(b).Kind() {
	case 'n':
		return nil
	case '"':
		var s string
		if err := api.Unmarshal(b, &s); err != nil {
			return err
		}
		in.Set, in.Text = true, &s
		return nil
	case '[':
		in.Set = true
		return api.Unmarshal(b, &in.Items)
	}
	return &api.FieldError{Field: "input", Msg: "want a string or an array of input items"}
}

// ResponsesItem is one input item: a message (type "message", or no type
// and a role), a function_call the model made, or a function_call_output
// answering one. The fields an earlier response's output carries (id,
// status, annotations) are read past.
type ResponsesItem struct {
	Type string `json:"type"`
	// message
	Role    string         `json:"role"`
	Content *ResponsesText `json:"content"`
	// function_call and function_call_output
	CallID string `json:"call_id"`
	// function_call
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	// function_call_output
	Output *ResponsesText `json:"output"`
}

// UnmarshalJSON reads an item and checks the fields its type needs.
func (it *ResponsesItem) UnmarshalJSON(b []byte) error {
	type plain ResponsesItem
	var p plain
	if err := api.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Type == "" && p.Role != "" {
		p.Type = "message"
	}
	switch p.Type {
	case "message":
		switch p.Role {
		case "user", "system", "developer", "assistant":
		default:
			return &api.FieldError{Field: "role", Sub: ".role", Msg: fmt.Sprintf("%q is not user, system, developer or assistant", p.Role)}
		}
		if p.Content == nil {
			return &api.FieldError{Field: "content", Sub: ".content", Msg: "required for a message"}
		}
	case "function_call":
		if !functionName.MatchString(p.Name) {
			return &api.FieldError{Field: "name", Sub: ".name", Msg: "want 1 to 64 letters, digits, underscores or dashes"}
		}
		if p.CallID == "" {
			return &api.FieldError{Field: "call_id", Sub: ".call_id", Msg: "required for a function_call"}
		}
	case "function_call_output":
		if p.CallID == "" {
			return &api.FieldError{Field: "call_id", Sub: ".call_id", Msg: "required for a function_call_output"}
		}
		if p.Output == nil {
			return &api.FieldError{Field: "output", Sub: ".output", Msg: "required for a function_call_output"}
		}
	case "item_reference":
		return &api.FieldError{Field: "type", Sub: ".type", Msg: "item references need stored responses, and qwend stores none; send the item itself"}
	case "":
		return &api.FieldError{Field: "type", Sub: ".type", Msg: "required: message, function_call or function_call_output"}
	default:
		return &api.FieldError{Field: "type", Sub: ".type", Msg: fmt.Sprintf("%q items are not supported; only message, function_call and function_call_output are", p.Type)}
	}
	*it = ResponsesItem(p)
	return nil
}

// ResponsesText is a message's content or a function call's output: a
// string, or text parts (input_text, output_text) joined with newlines, as
// chat completions joins its text parts.
type ResponsesText string

// UnmarshalJSON accepts a string or an array of text parts; a part of
// another type (input_image, input_file, refusal, ...) is refused by its
// type and path.
func (c *ResponsesText) UnmarshalJSON(b []byte) error {
	text, err := textParts(b, "input_text and output_text parts", "input_text", "output_text")
	*c = ResponsesText(text)
	return err
}

// ResponsesTool is a function tool in the Responses shape: {"type":
// "function", "name", "description", "parameters", "strict"}.
type ResponsesTool struct {
	Type        string  `json:"type"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	Parameters  RawJSON `json:"parameters"`
	Strict      *bool   `json:"strict"`
	// not honoured: refused unless absent or neutral
	DeferLoading   *bool   `json:"defer_loading"`
	OutputSchema   RawJSON `json:"output_schema"`
	AllowedCallers RawJSON `json:"allowed_callers"`

	raw jsontext.Value
}

// UnmarshalJSON keeps the object as sent and checks it is a function with
// a valid name and an object (or no) parameters schema.
func (t *ResponsesTool) UnmarshalJSON(b []byte) error {
	type plain ResponsesTool
	var p plain
	if err := api.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Type != "function" {
		return &api.FieldError{Field: "type", Sub: ".type", Msg: fmt.Sprintf("%q tools are not supported; only function tools are", p.Type)}
	}
	if !functionName.MatchString(p.Name) {
		return &api.FieldError{Field: "name", Sub: ".name", Msg: "want 1 to 64 letters, digits, underscores or dashes"}
	}
	if k := jsontext.Value(p.Parameters).Kind(); len(p.Parameters) > 0 && k != '{' {
		return &api.FieldError{Field: "parameters", Sub: ".parameters", Msg: "want a JSON schema object"}
	}
	switch {
	case p.DeferLoading != nil && *p.DeferLoading:
		return &api.FieldError{Field: "defer_loading", Sub: ".defer_loading", Msg: "not supported: every tool is in the prompt"}
	case !neutral(p.OutputSchema):
		return &api.FieldError{Field: "output_schema", Sub: ".output_schema", Msg: "not supported"}
	case !neutral(p.AllowedCallers, `["direct"]`):
		return &api.FieldError{Field: "allowed_callers", Sub: ".allowed_callers", Msg: `not supported: only ["direct"]`}
	}
	*t = ResponsesTool(p)
	t.raw = append(jsontext.Value(nil), b...)
	return nil
}

// chatTool is the tool in chat completions' shape, as the template renders
// it: {"type": "function", "function": {"name", "description",
// "parameters"}}.
func (t *ResponsesTool) chatTool() Tool {
	var b bytes.Buffer
	name, _ := json.Marshal(t.Name)
	b.WriteString(`{"type": "function", "function": {"name": `)
	b.Write(name)
	if t.Description != nil {
		d, _ := json.Marshal(*t.Description)
		b.WriteString(`, "description": `)
		b.Write(d)
	}
	if len(t.Parameters) > 0 {
		b.WriteString(`, "parameters": `)
		b.Write(t.Parameters)
	}
	b.WriteString(`}}`)
	out := Tool{Type: "function", raw: jsontext.Value(b.Bytes())}
	out.Function.Name, out.Function.Parameters, out.Function.Strict = t.Name, t.Parameters, t.Strict
	if t.Description != nil {
		out.Function.Description = *t.Description
	}
	return out
}

// ResponsesToolChoice is "none", "auto", "required", or {"type":
// "function", "name": ...}.
type ResponsesToolChoice struct {
	ToolChoice
	raw jsontext.Value
}

// UnmarshalJSON accepts the string and function forms; the other forms
// (allowed_tools, hosted tools, mcp, custom) are refused by their type.
func (c *ResponsesToolChoice) UnmarshalJSON(b []byte) error {
	c.raw = append(jsontext.Value(nil), b...)
	if ok, err := c.readMode(b); ok {
		return err
	}
	var o struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := api.Unmarshal(b, &o); err != nil {
		return &api.FieldError{Field: "tool_choice", Msg: `want "none", "auto", "required" or {"type": "function", "name": ...}`}
	}
	if o.Type != "function" {
		return &api.FieldError{Field: "tool_choice", Sub: ".type", Msg: fmt.Sprintf("%q is not supported; only function", o.Type)}
	}
	if o.Name == "" {
		return &api.FieldError{Field: "tool_choice", Sub: ".name", Msg: "required"}
	}
	c.Mode, c.Name = "function", o.Name
	return nil
}

// ResponsesTextFormat is text.format: {"type": "text"}, {"type":
// "json_object"} or {"type": "json_schema", "name", "schema",
// "description", "strict"}.
type ResponsesTextFormat struct {
	Type        string  `json:"type"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Schema      RawJSON `json:"schema"`
	Strict      *bool   `json:"strict"`
	raw         jsontext.Value
}

// UnmarshalJSON keeps the object as sent, for the response's echo.
func (f *ResponsesTextFormat) UnmarshalJSON(b []byte) error {
	type plain ResponsesTextFormat
	var p plain
	if err := api.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = ResponsesTextFormat(p)
	f.raw = append(jsontext.Value(nil), b...)
	return nil
}

// neutral reports whether a field qwend does not honour may pass: absent,
// null, an object of nulls, or one of the values that ask for nothing
// (compared as compact JSON).
func neutral(raw RawJSON, values ...string) bool {
	if len(raw) == 0 {
		return true
	}
	v := jsontext.Value(bytes.Clone(raw))
	if v.Compact() != nil {
		return false
	}
	if v.Kind() == '{' {
		var m map[string]jsontext.Value
		if api.Unmarshal(v, &m) == nil {
			all := true
			for _, e := range m {
				all = all && e.Kind() == 'n'
			}
			if all {
				return true
			}
		}
	}
	for _, n := range values {
		if string(v) == n {
			return true
		}
	}
	return false
}

// unsupported is a 400 naming a field of the Responses API that qwend
// does not honour.
func unsupported(field, why string) *api.Error {
	e := api.BadRequest("field %q: not supported: %s", field, why)
	e.Code = "unsupported_parameter"
	return e
}

// refuseUnsupported refuses by name every field that is set to something
// qwend would otherwise have to ignore.
func (in *ResponsesRequest) refuseUnsupported() *api.Error {
	if in.Store != nil && *in.Store {
		return unsupported("store", "qwend stores no responses (its ledger keeps usage, not bodies); leave store out or send false")
	}
	for _, f := range []struct {
		name    string
		raw     RawJSON
		neutral []string
		why     string
	}{
		{"previous_response_id", in.PreviousResponseID, nil, "qwend stores no responses; send the whole conversation in input"},
		{"conversation", in.Conversation, nil, "qwend stores no conversations; send the whole conversation in input"},
		{"background", in.Background, []string{"false"}, "responses run in the foreground only"},
		{"prompt", in.Prompt, nil, "there are no stored prompt templates"},
		{"prompt_cache_options", in.PromptCacheOptions, nil, "the prefix cache is automatic"},
		{"prompt_cache_retention", in.PromptCacheRetention, []string{`"in_memory"`}, "prefixes are cached in memory only"},
		{"context_management", in.ContextManagement, []string{"[]"}, "the context is never compacted"},
		{"moderation", in.Moderation, nil, "there is no moderation"},
		{"reasoning", in.Reasoning, nil, "the model does not reason"},
		{"service_tier", in.ServiceTier, []string{`"auto"`, `"default"`}, "there is one service tier"},
		{"truncation", in.Truncation, []string{`"disabled"`}, "the input is never truncated; a prompt over the context is refused"},
		{"max_tool_calls", in.MaxToolCalls, nil, "there are no built-in tools"},
	} {
		if !neutral(f.raw, f.neutral...) {
			return unsupported(f.name, f.why)
		}
	}
	if _, _, aerr := in.logprobs(); aerr != nil {
		return aerr
	}
	if in.Text != nil && !neutral(in.Text.Verbosity, `"medium"`) {
		return unsupported("text.verbosity", "only medium")
	}
	if o := in.StreamOptions; o != nil && o.IncludeObfuscation != nil && *o.IncludeObfuscation {
		return unsupported("stream_options.include_obfuscation", "stream events are not padded; send false")
	}
	return nil
}

// includeLogprobs is the include value that asks for the output text's
// log probabilities (the only one qwend has).
const includeLogprobs = "message.output_text.logprobs"

// logprobs reads include and top_logprobs: whether the output text's
// logprobs are asked for (include holds "message.output_text.logprobs"),
// and how many alternatives per token (0-20). Other include values, and
// top_logprobs without that include, are refused by name.
func (in *ResponsesRequest) logprobs() (on bool, top int, aerr *api.Error) {
	if len(in.Include) > 0 && !neutral(in.Include) {
		var inc []string
		if api.Unmarshal(in.Include, &inc) != nil {
			return false, 0, api.BadRequest("field \"include\": want an array of strings")
		}
		for i, v := range inc {
			if v != includeLogprobs {
				return false, 0, unsupported(fmt.Sprintf("include[%d]", i), fmt.Sprintf("%q is not available; only %q", v, includeLogprobs))
			}
			on = true
		}
	}
	if len(in.TopLogprobs) > 0 && !neutral(in.TopLogprobs) {
		if api.Unmarshal(in.TopLogprobs, &top) != nil || top < 0 || top > engine.MaxTopLogprobs {
			return false, 0, api.BadRequest("field \"top_logprobs\": want an integer between 0 and %d", engine.MaxTopLogprobs)
		}
		if top > 0 && !on {
			return false, 0, unsupported("top_logprobs", fmt.Sprintf("send \"include\": [%q] with it", includeLogprobs))
		}
	}
	return on, top, nil
}

// argumentsPath finds the chat conversation's tool-call arguments in an
// error of the template, to name them by their input item instead.
var argumentsPath = regexp.MustCompile(`messages\[(\d+)\]\.tool_calls\[(\d+)\]\.function\.arguments`)

// toChat maps the request to the chat request chat completions runs:
// instructions become the first system message, a string input a user
// message, function_call items the calls of an assistant message
// (consecutive calls, and a call after an assistant message, join it),
// function_call_output items tool messages. callItem maps a chat
// message's tool call (by message and call index) to its input item.
func (in *ResponsesRequest) toChat() (*ChatRequest, map[[2]int]int, *api.Error) {
	if aerr := in.refuseUnsupported(); aerr != nil {
		return nil, nil, aerr
	}
	if !in.Input.Set {
		return nil, nil, api.BadRequest("field \"input\": required")
	}
	out := &ChatRequest{Template: in.Template, ParallelToolCalls: in.ParallelToolCalls}
	if on, top, _ := in.logprobs(); on {
		out.Logprobs, out.TopLogprobs = json.RawMessage("true"), &top
	}
	out.Model, out.Temperature, out.TopP, out.Stream = in.Model, in.Temperature, in.TopP, in.Stream
	out.User, out.SafetyIdentifier, out.Metadata = in.User, in.SafetyIdentifier, in.Metadata
	mt, aerr := api.MaxTokens("max_output_tokens", in.MaxOutputTokens)
	if aerr != nil {
		return nil, nil, aerr
	}
	if mt > 0 {
		out.MaxTokens = &mt
	}

	msgs := []Message{}
	if in.Instructions != nil && *in.Instructions != "" {
		msgs = append(msgs, Message{Role: "system", Content: Content(*in.Instructions)})
	}
	if in.Input.Text != nil {
		msgs = append(msgs, Message{Role: "user", Content: Content(*in.Input.Text)})
	}
	callItem := map[[2]int]int{}
	names := map[string]string{} // call_id: function name
	for i, it := range in.Input.Items {
		switch it.Type {
		case "message":
			msgs = append(msgs, Message{Role: it.Role, Content: Content(*it.Content)})
		case "function_call":
			call := MessageToolCall{ID: it.CallID, Type: "function"}
			call.Function.Name, call.Function.Arguments = it.Name, it.Arguments
			names[it.CallID] = it.Name
			if n := len(msgs); n == 0 || msgs[n-1].Role != "assistant" {
				msgs = append(msgs, Message{Role: "assistant"})
			}
			last := &msgs[len(msgs)-1]
			callItem[[2]int{len(msgs) - 1, len(last.ToolCalls)}] = i
			last.ToolCalls = append(last.ToolCalls, call)
		case "function_call_output":
			msgs = append(msgs, Message{Role: "tool", ToolCallID: it.CallID, Name: names[it.CallID], Content: Content(*it.Output)})
		}
	}
	if len(msgs) == 0 {
		return nil, nil, api.BadRequest("field \"input\": at least one input item is required")
	}
	out.Messages = msgs

	for _, t := range in.Tools {
		out.Tools = append(out.Tools, t.chatTool())
	}
	if c := in.ToolChoice; c != nil {
		out.ToolChoice = &c.ToolChoice
		if c.Mode == "function" && !in.hasTool(c.Name) {
			return nil, nil, api.BadRequest("field \"tool_choice.name\": %q is not one of the tools", c.Name)
		}
	}
	return out, callItem, nil
}

func (in *ResponsesRequest) hasTool(name string) bool {
	for _, t := range in.Tools {
		if t.Name == name {
			return true
		}
	}
	return false
}

// formatGrammar is text.format's grammar, built as response_format's is;
// "" for text.
func (in *ResponsesRequest) formatGrammar() (string, *api.Error) {
	if in.Text == nil || in.Text.Format == nil {
		return "", nil
	}
	f := in.Text.Format
	switch f.Type {
	case "text":
		return "", nil
	case "json_object":
		return engine.JSONObjectGrammar(), nil
	case "json_schema":
		if len(f.Schema) == 0 {
			return "", api.BadRequest("field \"text.format.schema\": required for type json_schema")
		}
		g, err := engine.SchemaGrammar([]byte(f.Schema))
		if err != nil {
			return "", schemaError("text.format.schema", err)
		}
		return g, nil
	}
	return "", api.BadRequest("field \"text.format.type\": %q is not text, json_object or json_schema", f.Type)
}

// ResponsesToEngine maps a decoded Responses request to an engine request
// through the chat request it stands for; the second result is the chat
// request, whose tool settings read the answer.
func ResponsesToEngine(in *ResponsesRequest, id string, capture bool) (*engine.Request, *ChatRequest, *api.Error) {
	c, callItem, aerr := in.toChat()
	if aerr != nil {
		return nil, nil, aerr
	}
	format, aerr := in.formatGrammar()
	if aerr != nil {
		return nil, nil, aerr
	}
	req, aerr := ChatToEngine(c, id, capture)
	if aerr != nil {
		// name the input item, not the chat message it became
		aerr.Message = argumentsPath.ReplaceAllStringFunc(aerr.Message, func(s string) string {
			m := argumentsPath.FindStringSubmatch(s)
			i, _ := strconv.Atoi(m[1])
			j, _ := strconv.Atoi(m[2])
			if k, ok := callItem[[2]int{i, j}]; ok {
				return fmt.Sprintf("input[%d].arguments", k)
			}
			return s
		})
		return nil, nil, aerr
	}
	if format != "" {
		if req.Grammar != "" {
			return nil, nil, api.BadRequest("field \"text.format\": cannot constrain the answer while tool_choice forces a tool call")
		}
		req.Grammar = format
	}
	return req, c, nil
}

func responses(x *api.Exchange) *api.Error {
	var in ResponsesRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	if aerr := x.Identify(api.BodyIdentity{User: in.User, SafetyIdentifier: in.SafetyIdentifier,
		MetadataUserID: in.Metadata["user_id"], MetadataFeature: in.Metadata["feature"]}); aerr != nil {
		return aerr
	}
	x.IgnoredKeys("", in.Unknown)
	var aerr *api.Error
	if in.Template, aerr = templateFor(x); aerr != nil {
		return aerr
	}
	id := x.ResponseID("resp_")
	req, c, aerr := ResponsesToEngine(&in, id, x.Server().CaptureContent())
	if aerr != nil {
		return aerr
	}
	x.Rec.Request = req
	eng, aerr := x.Engine(in.Model)
	if aerr != nil {
		return aerr
	}
	r := &responseWriter{in: &in, tools: c.tools, id: id, base: strings.TrimPrefix(id, "resp_"),
		model: x.Server().Model(), created: time.Now().Unix(), logprobs: c.logprobs}
	if r.logprobs {
		req.Logprobs = func(b []engine.TokenLogprob) { r.pending = append(r.pending, b...) }
	}
	if !in.Stream {
		return r.whole(x, eng, req)
	}
	return r.stream(x, eng, req)
}

// responseWriter builds one response: the object, its output items, and
// the stream's events.
type responseWriter struct {
	in      *ResponsesRequest
	tools   *toolOutput
	id      string
	base    string // the id's suffix, for the items' ids
	model   string
	created int64

	output []any // the finished output items
	// the output text's logprobs, when include asks for them: those not
	// yet streamed, and the open message's (or the whole answer's)
	logprobs         bool
	pending, msgLogs []engine.TokenLogprob

	// streaming
	st    *api.Streamer
	seq   int
	msg   *openMessage
	delta *api.DeltaEvent
	buf   []byte
}

// openMessage is the message item a stream is writing text into.
type openMessage struct {
	id    string
	index int
	text  strings.Builder
}

// object is the response object: status in_progress, completed,
// incomplete or failed.
func (r *responseWriter) object(status string, usage any, fail *api.Error) map[string]any {
	var instructions any
	if r.in.Instructions != nil {
		instructions = *r.in.Instructions
	}
	tools := make([]json.RawMessage, len(r.in.Tools))
	for i, t := range r.in.Tools {
		tools[i] = json.RawMessage(t.raw)
	}
	var toolChoice any = "auto"
	if r.in.ToolChoice != nil {
		toolChoice = json.RawMessage(r.in.ToolChoice.raw)
	}
	var format any = map[string]string{"type": "text"}
	if r.in.Text != nil && r.in.Text.Format != nil {
		format = json.RawMessage(r.in.Text.Format.raw)
	}
	metadata := r.in.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	output := r.output
	if output == nil {
		output = []any{}
	}
	m := map[string]any{
		"id": r.id, "object": "response", "created_at": r.created, "status": status, "model": r.model,
		"output": output, "usage": usage, "error": nil, "incomplete_details": nil,
		"instructions": instructions, "tools": tools, "tool_choice": toolChoice,
		"parallel_tool_calls": r.in.ParallelToolCalls == nil || *r.in.ParallelToolCalls,
		"max_output_tokens":   r.in.MaxOutputTokens,
		"temperature":         optionalFloat(r.in.Temperature, 1), "top_p": optionalFloat(r.in.TopP, 1),
		"text": map[string]any{"format": format}, "metadata": metadata,
		"previous_response_id": nil, "reasoning": nil, "store": false, "background": false,
		"truncation": "disabled", "service_tier": "default", "user": nil, "safety_identifier": nil,
	}
	if r.in.User != "" {
		m["user"] = r.in.User
	}
	if r.in.SafetyIdentifier != "" {
		m["safety_identifier"] = r.in.SafetyIdentifier
	}
	if status == "completed" || status == "incomplete" {
		m["completed_at"] = time.Now().Unix()
	}
	if status == "incomplete" {
		m["incomplete_details"] = map[string]string{"reason": "max_output_tokens"}
	}
	if fail != nil {
		m["error"] = map[string]any{"code": fail.Code, "message": fail.Message}
	}
	return m
}

func optionalFloat(p *float32, def float64) float64 {
	if p == nil {
		return def
	}
	// the float32 printed as it was sent (0.7, not 0.699999988079071)
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(*p), 'g', -1, 32), 64)
	return f
}

// responsesUsage is the Responses API's usage object.
func responsesUsage(res engine.Result) map[string]any {
	return map[string]any{
		"input_tokens": res.PromptTokens, "output_tokens": res.OutputTokens, "total_tokens": res.PromptTokens + res.OutputTokens,
		"input_tokens_details":  map[string]int{"cached_tokens": res.CachedTokens},
		"output_tokens_details": map[string]int{"reasoning_tokens": 0},
	}
}

// responseStatus is the response's status for the result: incomplete when it
// ran out of output tokens.
func responseStatus(res engine.Result) string {
	if res.FinishReason == engine.FinishLength {
		return "incomplete"
	}
	return "completed"
}

// responsesLogprobs is an output_text part's or event's logprobs: the
// tokens' entries, [] when there are none (or none were asked for).
func responsesLogprobs(lps []engine.TokenLogprob) []map[string]any {
	return api.TokenLogprobs(lps, false)
}

// textPart is an output_text content part, with the logprobs of its
// tokens (chat completions' logprobs.content entries; [] when not asked
// for).
func textPart(text string, lps []engine.TokenLogprob) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": responsesLogprobs(lps)}
}

func (r *responseWriter) messageItem(id, text, status string, lps []engine.TokenLogprob) map[string]any {
	return map[string]any{"type": "message", "id": id, "role": "assistant", "status": status, "content": []any{textPart(text, lps)}}
}

func (r *responseWriter) callItem(id string, c chat.ToolCall, status, args string) map[string]any {
	return map[string]any{"type": "function_call", "id": id, "call_id": c.ID, "name": c.Name, "arguments": args, "status": status}
}

func (r *responseWriter) itemID(prefix string, index int) string {
	return fmt.Sprintf("%s_%s_%d", prefix, r.base, index)
}

// whole runs the request and writes the response object.
func (r *responseWriter) whole(x *api.Exchange, eng *engine.Engine, req *engine.Request) *api.Error {
	var text strings.Builder
	res, err := x.Generate(eng, req, func(piece string) { text.WriteString(piece) })
	if err != nil {
		return api.FromEngine(err)
	}
	st := responseStatus(res)
	content, calls := text.String(), []chat.ToolCall(nil)
	if r.tools != nil {
		content, calls = chat.ParseToolCalls(content, r.tools.maxCalls)
	}
	if content != "" || len(calls) == 0 {
		var lps []engine.TokenLogprob
		if len(calls) == 0 {
			lps = r.pending // the whole text is the message's
		}
		r.output = append(r.output, r.messageItem(r.itemID("msg", len(r.output)), content, st, lps))
	}
	for _, c := range calls {
		r.output = append(r.output, r.callItem(r.itemID("fc", len(r.output)), c, "completed", c.Arguments))
	}
	api.WriteJSON(x.W, http.StatusOK, r.object(st, responsesUsage(res), nil))
	return nil
}

// event writes one server-sent event of the given type; its fields gain
// type and sequence_number.
func (r *responseWriter) event(typ string, fields map[string]any) {
	fields["type"] = typ
	fields["sequence_number"] = r.seq
	r.seq++
	b, _ := json.Marshal(fields)
	r.buf = append(r.buf[:0], "event: "...)
	r.buf = append(r.buf, typ...)
	r.buf = append(r.buf, "\ndata: "...)
	r.buf = append(r.buf, b...)
	r.buf = append(r.buf, '\n', '\n')
	r.st.Write(r.buf)
}

// textDelta is response.output_text.delta, its text last so that the
// event is rendered around it (api.DeltaEvent).
type textDelta struct {
	Type         string `json:"type"`
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Logprobs     []any  `json:"logprobs"`
	Delta        string `json:"delta"`
}

// text streams a piece of the answer's text, opening a message item first
// when none is open.
func (r *responseWriter) text(piece string) {
	if piece == "" {
		return
	}
	if r.msg == nil {
		r.openMessage()
	}
	r.msg.text.WriteString(piece)
	if r.logprobs {
		lps := r.pending
		r.pending = nil
		r.msgLogs = append(r.msgLogs, lps...)
		r.event("response.output_text.delta", map[string]any{"item_id": r.msg.id, "output_index": r.msg.index, "content_index": 0, "logprobs": responsesLogprobs(lps), "delta": piece})
		return
	}
	// the delta's JSON up to its closing brace, then the sequence number
	ev := r.delta.Render(piece)
	r.buf = append(r.buf[:0], ev[:len(ev)-1]...)
	r.buf = append(r.buf, `,"sequence_number":`...)
	r.buf = strconv.AppendInt(r.buf, int64(r.seq), 10)
	r.buf = append(r.buf, "}\n\n"...)
	r.seq++
	r.st.Write(r.buf)
}

func (r *responseWriter) openMessage() {
	m := &openMessage{index: len(r.output)}
	m.id = r.itemID("msg", m.index)
	r.msg = m
	r.event("response.output_item.added", map[string]any{"output_index": m.index,
		"item": map[string]any{"type": "message", "id": m.id, "role": "assistant", "status": "in_progress", "content": []any{}}})
	r.event("response.content_part.added", map[string]any{"item_id": m.id, "output_index": m.index, "content_index": 0, "part": textPart("", nil)})
	r.delta, _ = api.NewDeltaEvent("event: response.output_text.delta\ndata: ",
		textDelta{Type: "response.output_text.delta", ItemID: m.id, OutputIndex: m.index, Logprobs: []any{}, Delta: api.DeltaMark}, "")
}

// closeMessage ends the open message item, if any.
func (r *responseWriter) closeMessage(status string) {
	m := r.msg
	if m == nil {
		return
	}
	r.msg = nil
	text := m.text.String()
	lps := r.msgLogs
	r.msgLogs = nil
	r.event("response.output_text.done", map[string]any{"item_id": m.id, "output_index": m.index, "content_index": 0, "text": text, "logprobs": responsesLogprobs(lps)})
	r.event("response.content_part.done", map[string]any{"item_id": m.id, "output_index": m.index, "content_index": 0, "part": textPart(text, lps)})
	item := r.messageItem(m.id, text, status, lps)
	r.event("response.output_item.done", map[string]any{"output_index": m.index, "item": item})
	r.output = append(r.output, item)
}

// call streams a tool call as a function_call item, its arguments whole in
// one delta.
func (r *responseWriter) call(_ int, c chat.ToolCall) {
	r.closeMessage("completed")
	r.pending = nil // the call's own tokens: no message holds them
	index := len(r.output)
	id := r.itemID("fc", index)
	r.event("response.output_item.added", map[string]any{"output_index": index, "item": r.callItem(id, c, "in_progress", "")})
	r.event("response.function_call_arguments.delta", map[string]any{"item_id": id, "output_index": index, "delta": c.Arguments})
	r.event("response.function_call_arguments.done", map[string]any{"item_id": id, "output_index": index, "name": c.Name, "arguments": c.Arguments})
	item := r.callItem(id, c, "completed", c.Arguments)
	r.event("response.output_item.done", map[string]any{"output_index": index, "item": item})
	r.output = append(r.output, item)
}

// stream runs the request and writes the Responses event sequence:
// response.created and response.in_progress once the request is admitted
// (with the status line and headers, before the prompt is prefilled, then
// an SSE comment every api.KeepAliveInterval until the first token), the
// output items' events as the answer comes, and response.completed (or
// response.incomplete) with the usage. An error after the headers goes
// out as an error event and response.failed.
func (r *responseWriter) stream(x *api.Exchange, eng *engine.Engine, req *engine.Request) *api.Error {
	r.st = api.NewStreamer(x.W, "text/event-stream")
	req.Queued = func() {
		r.st.Start()
		r.event("response.created", map[string]any{"response": r.object("in_progress", nil, nil)})
		r.event("response.in_progress", map[string]any{"response": r.object("in_progress", nil, nil)})
	}
	req.Idle, req.IdleInterval = func() { r.st.Write(api.SSEComment) }, api.KeepAliveInterval
	res, err := x.Generate(eng, req, r.tools.stream(r.text, r.call))
	if err != nil {
		ae := api.FromEngine(err)
		if !r.st.Started() {
			return ae
		}
		r.closeMessage("incomplete")
		var code any
		if ae.Code != "" {
			code = ae.Code
		}
		r.event("error", map[string]any{"code": code, "message": ae.Message, "param": nil})
		r.event("response.failed", map[string]any{"response": r.object("failed", nil, ae)})
		return nil
	}
	r.tools.flush(r.text, r.call)
	st := responseStatus(res)
	if r.msg == nil && len(r.output) == 0 {
		r.openMessage() // an empty answer is an empty message, as whole
	}
	r.closeMessage(st)
	r.event("response."+st, map[string]any{"response": r.object(st, responsesUsage(res), nil)})
	return nil
}
