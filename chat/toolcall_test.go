package chat

import (
	"strings"
	"testing"
)

func TestParseToolCalls(t *testing.T) {
	out := "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"n\": [1, 2]}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}\n</tool_call>"
	content, calls := ParseToolCalls(out, 0)
	if content != "Let me check." {
		t.Errorf("content %q", content)
	}
	if len(calls) != 2 || calls[0].Name != "get_weather" || calls[0].Arguments != `{"city":"Paris","n":[1,2]}` ||
		calls[1].Name != "get_time" || calls[1].Arguments != `{"tz":"UTC"}` {
		t.Fatalf("calls %+v", calls)
	}
	if !strings.HasPrefix(calls[0].ID, "call_") || len(calls[0].ID) != 29 || calls[0].ID == calls[1].ID {
		t.Errorf("ids %q %q", calls[0].ID, calls[1].ID)
	}
	if _, one := ParseToolCalls(out, 1); len(one) != 1 || one[0].Name != "get_weather" {
		t.Errorf("max 1 call: %+v", one)
	}
	for _, text := range []string{
		"no calls here, but a < sign and <tool",
		"<tool_call>\nnot json\n</tool_call> after",
		"<tool_call>{\"arguments\": {}}</tool_call>", // no name
		"<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
	} {
		if content, calls := ParseToolCalls(text, 0); len(calls) != 0 || content != text {
			t.Errorf("%q: content %q calls %+v", text, content, calls)
		}
	}
	// cut off before </tool_call>: still a call when its JSON is whole
	if _, calls := ParseToolCalls("<tool_call>\n{\"name\": \"f\"}\n", 0); len(calls) != 1 || calls[0].Arguments != "{}" {
		t.Errorf("unterminated: %+v", calls)
	}
}

// Streamed piece by piece, the parser releases the same text and calls as
// parsing the whole, and never releases a prefix of <tool_call> as text.
func TestToolCallParserStreams(t *testing.T) {
	out := "a <b> <tool_cal x\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"k\": \"<tool_call>?\"}}\n</tool_call>\ntail"
	for _, size := range []int{1, 2, 3, 5, 11} {
		var p ToolCallParser
		var text strings.Builder
		var calls []ToolCall
		take := func(evs []Event) {
			for _, ev := range evs {
				if ev.Call != nil {
					calls = append(calls, *ev.Call)
					continue
				}
				if strings.Contains(ev.Text, "<tool_call") {
					t.Errorf("size %d: released %q", size, ev.Text)
				}
				text.WriteString(ev.Text)
			}
		}
		for i := 0; i < len(out); i += size {
			take(p.Push(out[i:min(i+size, len(out))]))
		}
		take(p.Flush())
		if text.String() != "a <b> <tool_cal x\ntail" || len(calls) != 1 || calls[0].Arguments != `{"k":"<tool_call>?"}` {
			t.Errorf("size %d: text %q calls %+v", size, text.String(), calls)
		}
	}
}
