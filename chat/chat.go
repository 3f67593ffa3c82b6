// Package chat builds prompts: a conversation rendered with Qwen's ChatML
// template, and Qwen2.5-Coder's fill-in-the-middle prompt. Template text is
// special (its control tokens are parsed); message content is plain text
// and cannot forge control tokens.
package chat

import (
	"errors"
	"fmt"

	"github.com/qwend/qwend/engine"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string // system, user, assistant or tool
	Content string
}

// Roles accepted in a conversation.
var Roles = []string{"system", "user", "assistant", "tool"}

// ErrNoMessages: a conversation needs at least one message.
var ErrNoMessages = errors.New(`field "messages": at least one message is required`)

// Render renders msgs with Qwen's ChatML template and opens the assistant's
// turn. Errors name the field at fault (messages[i].role).
func Render(msgs []Message) ([]engine.Segment, error) {
	if len(msgs) == 0 {
		return nil, ErrNoMessages
	}
	segs := make([]engine.Segment, 0, 3*len(msgs)+1)
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "tool":
		default:
			return nil, fmt.Errorf("field \"messages[%d].role\": %q is not system, user, assistant or tool", i, m.Role)
		}
		segs = append(segs,
			engine.Segment{Text: "<|im_start|>" + m.Role + "\n", Special: true},
			engine.Segment{Text: m.Content},
			engine.Segment{Text: "<|im_end|>\n", Special: true})
	}
	return append(segs, engine.Segment{Text: "<|im_start|>assistant\n", Special: true}), nil
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
