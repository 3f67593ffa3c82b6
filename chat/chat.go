// Package chat builds prompts: a conversation rendered with the model's own
// chat template (the GGUF's tokenizer.chat_template, a Jinja template
// rendered as Hugging Face's apply_chat_template does), or with ChatML when
// the model has none, and Qwen2.5-Coder's fill-in-the-middle prompt.
//
// Template text is special (its control tokens are parsed); what the client
// sent (message content, tool definitions, tool-call arguments) is plain
// text and cannot forge control tokens: the template is rendered with that
// text replaced by placeholders, and the rendered prompt is split around
// them (see Template.Render).
package chat

import (
	"errors"
	"fmt"

	"github.com/qwend/qwend/engine"
)

// Message is one turn of a conversation.
type Message struct {
	// Role is system, user, assistant or tool; developer (OpenAI's newer
	// name for system) is rendered as system.
	Role    string
	Content string
	// ToolCalls are the function calls an assistant turn made.
	ToolCalls []ToolCall
	// ToolCallID is, on a tool turn, the id of the call it answers.
	ToolCallID string
	// Name is, on a tool turn, the function whose result it is (optional).
	Name string
}

// ToolCall is one function call made by the assistant.
type ToolCall struct {
	ID        string // the call's id ("call_..."); may be empty
	Name      string // the function's name
	Arguments string // the arguments, a JSON object's text
}

// Roles accepted in a conversation.
var Roles = []string{"system", "developer", "user", "assistant", "tool"}

// ErrNoMessages: a conversation needs at least one message.
var ErrNoMessages = errors.New(`field "messages": at least one message is required`)

// Render renders msgs with ChatML (the fallback template) and opens the
// assistant's turn. Errors name the field at fault (messages[i].role).
func Render(msgs []Message) ([]engine.Segment, error) {
	return ChatML.Render(Conversation{Messages: msgs})
}

// checkMessages validates roles and returns the messages with developer
// read as system. Errors name the field at fault.
func checkMessages(msgs []Message) ([]Message, error) {
	if len(msgs) == 0 {
		return nil, ErrNoMessages
	}
	out, copied := msgs, false
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "tool":
		case "developer":
			if !copied {
				out, copied = append([]Message(nil), msgs...), true
			}
			out[i].Role = "system"
		default:
			return nil, fmt.Errorf("field \"messages[%d].role\": %q is not system, developer, user, assistant or tool", i, m.Role)
		}
		if len(m.ToolCalls) > 0 && m.Role != "assistant" {
			return nil, fmt.Errorf("field \"messages[%d].tool_calls\": only assistant messages make tool calls", i)
		}
		for j, c := range m.ToolCalls {
			if c.Name == "" {
				return nil, fmt.Errorf("field \"messages[%d].tool_calls[%d].function.name\": empty", i, j)
			}
		}
	}
	return out, nil
}

// FIM is Qwen2.5-Coder's fill-in-the-middle prompt: the model writes what
// goes between prefix and suffix.
func FIM(prefix, suffix string) []engine.Segment {
	return []engine.Segment{
		{Text: "<|fim_prefix|>", Special: true}, {Text: prefix},
		{Text: "<|fim_suffix|>", Special: true}, {Text: suffix},
		{Text: "<|fim_middle|>", Special: true},
	}
}
