package chat

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
)

// The Qwen2.5 tool-call markup: <tool_call>\n{"name": ..., "arguments":
// {...}}\n</tool_call>, one block per call.
const (
	ToolCallOpen  = "<tool_call>"
	ToolCallClose = "</tool_call>"
)

// NewCallID returns a tool-call id: "call_" and 24 random letters and
// digits.
func NewCallID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 24)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "call_" + string(b)
}

// parseCall reads the JSON inside a <tool_call> block. ok is false when it
// is not an object with a non-empty string name; arguments, when present,
// must be an object (or a string holding one), and come back compacted.
func parseCall(body string) (ToolCall, bool) {
	var v struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &v); err != nil || v.Name == "" {
		return ToolCall{}, false
	}
	args := bytes.TrimSpace(v.Arguments)
	if len(args) > 0 && args[0] == '"' {
		var s string
		if json.Unmarshal(args, &s) != nil {
			return ToolCall{}, false
		}
		args = []byte(strings.TrimSpace(s))
	}
	if len(args) == 0 || string(args) == "null" {
		args = []byte("{}")
	}
	if args[0] != '{' {
		return ToolCall{}, false
	}
	var buf bytes.Buffer
	if json.Compact(&buf, args) != nil {
		return ToolCall{}, false
	}
	return ToolCall{ID: NewCallID(), Name: v.Name, Arguments: buf.String()}, true
}

// ToolCallParser splits a model's streamed output into text and tool
// calls. Text that may be the start of a <tool_call> block is held back
// until it is known not to be one; a block whose content is not a valid
// call comes out as text.
type ToolCallParser struct {
	pending string // held back: a possible or open <tool_call> block
	inCall  bool
	trimNL  bool // a block just closed: newlines after it are markup
	// MaxCalls, when above 0, keeps only the first MaxCalls calls (the
	// others are dropped: parallel_tool_calls false).
	MaxCalls int
	calls    int
}

// Event is one result of the parser: text to show, or a complete call.
type Event struct {
	Text string
	Call *ToolCall
}

// Push adds a piece of output and returns what can be released.
func (p *ToolCallParser) Push(piece string) []Event {
	p.pending += piece
	var out []Event
	for {
		if p.inCall {
			i := strings.Index(p.pending, ToolCallClose)
			if i < 0 {
				return out
			}
			body := p.pending[len(ToolCallOpen):i]
			rest := p.pending[i+len(ToolCallClose):]
			if c, ok := parseCall(body); ok {
				if p.MaxCalls <= 0 || p.calls < p.MaxCalls {
					p.calls++
					out = append(out, Event{Call: &c})
				}
			} else {
				out = append(out, Event{Text: p.pending[:i+len(ToolCallClose)]})
			}
			p.pending, p.inCall, p.trimNL = rest, false, true
			continue
		}
		if p.trimNL {
			// the newline between blocks belongs to the markup
			if p.pending = strings.TrimLeft(p.pending, "\n"); p.pending == "" {
				return out
			}
			p.trimNL = false
		}
		i := strings.Index(p.pending, ToolCallOpen)
		if i >= 0 {
			if i > 0 {
				out = append(out, Event{Text: p.pending[:i]})
			}
			p.pending, p.inCall = p.pending[i:], true
			continue
		}
		// hold back a tail that could begin <tool_call>
		keep := 0
		for n := min(len(ToolCallOpen)-1, len(p.pending)); n > 0; n-- {
			if strings.HasSuffix(p.pending, ToolCallOpen[:n]) {
				keep = n
				break
			}
		}
		if cut := len(p.pending) - keep; cut > 0 {
			out = append(out, Event{Text: p.pending[:cut]})
			p.pending = p.pending[cut:]
		}
		return out
	}
}

// Flush ends the output: a block still open is parsed as a call if its
// content is one (the model stopped before </tool_call>), otherwise it
// comes out as text, as does any held-back text.
func (p *ToolCallParser) Flush() []Event {
	defer func() { p.pending, p.inCall, p.trimNL = "", false, false }()
	if p.pending == "" {
		return nil
	}
	if p.inCall {
		if c, ok := parseCall(p.pending[len(ToolCallOpen):]); ok {
			if p.MaxCalls <= 0 || p.calls < p.MaxCalls {
				p.calls++
				return []Event{{Call: &c}}
			}
			return nil
		}
	}
	return []Event{{Text: p.pending}}
}

// Calls reports how many calls the parser has released.
func (p *ToolCallParser) Calls() int { return p.calls }

// ParseToolCalls splits a whole output into its text (the content, with the
// tool-call blocks removed and surrounding whitespace trimmed when there
// are calls) and its calls; maxCalls as in ToolCallParser.MaxCalls.
func ParseToolCalls(text string, maxCalls int) (string, []ToolCall) {
	p := ToolCallParser{MaxCalls: maxCalls}
	var content strings.Builder
	var calls []ToolCall
	for _, ev := range append(p.Push(text), p.Flush()...) {
		if ev.Call != nil {
			calls = append(calls, *ev.Call)
		} else {
			content.WriteString(ev.Text)
		}
	}
	if len(calls) > 0 {
		return strings.TrimSpace(content.String()), calls
	}
	return content.String(), nil
}
