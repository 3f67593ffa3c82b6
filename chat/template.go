package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ardanlabs/jinja"

	"github.com/qwend/qwend/engine"
)

// Conversation is what a chat template renders: the messages and the tools
// the model may call.
type Conversation struct {
	Messages []Message
	// Tools are the tool definitions as the client sent them, each a JSON
	// object ({"type":"function","function":{"name","description",
	// "parameters"}}); their key order is kept, as the template's tojson
	// writes it.
	Tools []json.RawMessage
}

// Template is a compiled chat template. It is safe for concurrent use.
type Template struct {
	src  string
	tmpl *jinja.Template
}

// chatMLSource is the fallback template: ChatML, with the Qwen2.5 tool
// format (a tools block in the system turn, <tool_call> and
// <tool_response>), and no default system message. Without tools it renders
// <|im_start|>role\ncontent<|im_end|>\n per message.
const chatMLSource = `{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- elif messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
`

// ChatML is the template used when a model carries none.
var ChatML = mustCompile(chatMLSource)

func mustCompile(src string) *Template {
	t, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return t
}

// Compile parses a Jinja chat template. Whitespace follows Hugging Face's
// settings (trim_blocks and lstrip_blocks on).
func Compile(src string) (*Template, error) {
	t, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return &Template{src: src, tmpl: t}, nil
}

// Source is the template's text.
func (t *Template) Source() string { return t.src }

var compiled sync.Map // template source -> *Template

// ForModel returns the compiled template for a model's
// tokenizer.chat_template (compiled once per distinct source); "" gives
// ChatML. An error means the model's template does not parse.
func ForModel(src string) (*Template, error) {
	if src == "" {
		return ChatML, nil
	}
	if t, ok := compiled.Load(src); ok {
		return t.(*Template), nil
	}
	t, err := Compile(src)
	if err != nil {
		return nil, err
	}
	compiled.Store(src, t)
	return t, nil
}

// Render renders c with the template and opens the assistant's turn
// (add_generation_prompt). Message content goes into plain segments, as do
// the strings of tool definitions and call arguments that could hold
// control-token text; the template's own text goes into special segments.
// Errors name the field at fault (messages[1].role), or say what the
// template refused.
func (t *Template) Render(c Conversation) ([]engine.Segment, error) {
	msgs, err := checkMessages(c.Messages)
	if err != nil {
		return nil, err
	}
	// two renderings with placeholders of different letters must agree:
	// a template that cut or inspected a placeholder (content[:10]) would
	// leave different text around them
	segs, err := t.render(c, msgs, newPlaceholders(false))
	if err != nil {
		return nil, err
	}
	again, err := t.render(c, msgs, newPlaceholders(true))
	if err != nil {
		return nil, err
	}
	if !slices.Equal(segs, again) {
		return nil, errChanged
	}
	return segs, nil
}

var errChanged = errors.New("chat template: it changed a message's content, which qwend cannot render safely")

// render renders once, with ph standing in for the client's text.
func (t *Template) render(c Conversation, msgs []Message, ph *placeholders) ([]engine.Segment, error) {
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		md := d.AsDict()
		md.Set("role", jinja.NewString(m.Role))
		md.Set("content", jinja.NewString(ph.content(m.Content)))
		if len(m.ToolCalls) > 0 {
			calls := make([]jinja.Value, len(m.ToolCalls))
			for j, tc := range m.ToolCalls {
				args, err := argumentsValue(tc.Arguments, ph)
				if err != nil {
					return nil, fmt.Errorf("field \"messages[%d].tool_calls[%d].function.arguments\": %v", i, j, err)
				}
				fn := jinja.NewDict()
				fn.AsDict().Set("name", jinja.NewString(ph.data(tc.Name)))
				fn.AsDict().Set("arguments", args)
				call := jinja.NewDict()
				if tc.ID != "" {
					call.AsDict().Set("id", jinja.NewString(ph.data(tc.ID)))
				}
				call.AsDict().Set("type", jinja.NewString("function"))
				call.AsDict().Set("function", fn)
				calls[j] = call
			}
			md.Set("tool_calls", jinja.NewList(calls))
		}
		if m.ToolCallID != "" {
			md.Set("tool_call_id", jinja.NewString(ph.data(m.ToolCallID)))
		}
		if m.Name != "" {
			md.Set("name", jinja.NewString(ph.data(m.Name)))
		}
		list[i] = d
	}
	data := map[string]jinja.Value{
		"messages":              jinja.NewList(list),
		"add_generation_prompt": jinja.NewBool(true),
	}
	if len(c.Tools) > 0 {
		tools := make([]jinja.Value, len(c.Tools))
		for i, raw := range c.Tools {
			v, err := jsonValue(raw, ph)
			if err != nil {
				return nil, fmt.Errorf("field \"tools[%d]\": %v", i, err)
			}
			tools[i] = v
		}
		data["tools"] = jinja.NewList(tools)
	}
	out, err := t.tmpl.RenderValues(data)
	if err != nil {
		return nil, fmt.Errorf("chat template: %v", err)
	}
	return ph.split(out)
}

// placeholders stand in for client text while the template renders. Each
// is ASCII letters and digits only, so that tojson writes it unchanged, and
// carries a per-render random nonce, so that client text cannot contain one.
type placeholders struct {
	prefix string
	end    byte // ends the index after the prefix
	texts  []phText
}

type phText struct {
	s    string
	data bool // from structured data: JSON-escaped where tojson quoted it
}

func newPlaceholders(lower bool) *placeholders {
	if lower {
		return &placeholders{prefix: fmt.Sprintf("qwph%016xn", rand.Uint64()), end: 'e'}
	}
	return &placeholders{prefix: fmt.Sprintf("QWPH%016XN", rand.Uint64()), end: 'E'}
}

func (p *placeholders) add(s string, data bool) string {
	p.texts = append(p.texts, phText{s, data})
	return p.prefix + strconv.Itoa(len(p.texts)-1) + string(p.end)
}

// content stands in for a message's content: always, unless empty (the
// templates test content for truth).
func (p *placeholders) content(s string) string {
	if s == "" {
		return ""
	}
	return p.add(s, false)
}

// data stands in for a string of structured data (tools, arguments, ids)
// when it holds a character that could belong to control-token text
// (<|im_end|>, [INST], ...) or that tojson escapes; plain identifiers and
// words stay, so that templates can still compare them ("type" ==
// "function").
func (p *placeholders) data(s string) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, strings.IndexByte(`<>|[]{}"\`, c) >= 0:
			return p.add(s, true)
		}
	}
	return s
}

// split cuts the rendered prompt around the placeholders: template text
// becomes special segments, client text plain ones. A placeholder that
// tojson quoted is written as the JSON string body tojson would have
// written. A template that cut or changed a placeholder (slicing content,
// say) is refused rather than rendered with it.
func (p *placeholders) split(out string) ([]engine.Segment, error) {
	var segs []engine.Segment
	special := func(s string) {
		if s == "" {
			return
		}
		if n := len(segs); n > 0 && segs[n-1].Special {
			segs[n-1].Text += s
			return
		}
		segs = append(segs, engine.Segment{Text: s, Special: true})
	}
	rest := out
	for {
		i := strings.Index(rest, p.prefix)
		if i < 0 {
			special(rest)
			break
		}
		special(rest[:i])
		tail := rest[i+len(p.prefix):]
		j := strings.IndexByte(tail, p.end)
		if j <= 0 {
			return nil, errChanged
		}
		k, err := strconv.Atoi(tail[:j])
		if err != nil || k < 0 || k >= len(p.texts) {
			return nil, errChanged
		}
		txt := p.texts[k]
		s := txt.s
		if txt.data && i > 0 && rest[i-1] == '"' && j+1 < len(tail) && tail[j+1] == '"' {
			s = jsonBody(s)
		}
		if s != "" {
			segs = append(segs, engine.Segment{Text: s})
		}
		rest = tail[j+1:]
	}
	return segs, nil
}

// jsonBody is s as a JSON string without its quotes, escaped as
// JSON.stringify and Python's json.dumps(ensure_ascii=False) escape it.
func jsonBody(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// maxJSONDepth bounds the nesting of tool definitions and arguments.
const maxJSONDepth = 64

// argumentsValue is a call's arguments for the template: the parsed
// object (templates write it with tojson), {} when empty, or the text
// itself when it is not JSON.
func argumentsValue(args string, ph *placeholders) (jinja.Value, error) {
	if strings.TrimSpace(args) == "" {
		return jinja.NewDict(), nil
	}
	if !json.Valid([]byte(args)) {
		return jinja.NewString(ph.data(args)), nil
	}
	return jsonValue([]byte(args), ph)
}

// jsonValue converts JSON to a template value, keeping object key order,
// integers as integers, and standing placeholders in for strings and keys
// that need them.
func jsonValue(raw []byte, ph *placeholders) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, ph, 0)
	if err != nil {
		return jinja.Value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Value{}, errors.New("not one JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, ph *placeholders, depth int) (jinja.Value, error) {
	if depth > maxJSONDepth {
		return jinja.Value{}, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Value{}, fmt.Errorf("malformed JSON: %v", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Value{}, fmt.Errorf("malformed JSON: %v", err)
				}
				v, err := decodeValue(dec, ph, depth+1)
				if err != nil {
					return jinja.Value{}, err
				}
				d.AsDict().Set(ph.data(kt.(string)), v)
			}
			_, err := dec.Token()
			return d, err
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec, ph, depth+1)
				if err != nil {
					return jinja.Value{}, err
				}
				items = append(items, v)
			}
			_, err := dec.Token()
			return jinja.NewList(items), err
		}
	case string:
		return jinja.NewString(ph.data(t)), nil
	case json.Number:
		return jinja.FromGoValue(t), nil
	case bool:
		return jinja.NewBool(t), nil
	case nil:
		return jinja.None(), nil
	}
	return jinja.Value{}, fmt.Errorf("unexpected JSON token %v", tok)
}
