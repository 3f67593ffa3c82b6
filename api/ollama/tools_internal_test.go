package ollama

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qwend/qwend/chat"
)

// An answer with <tool_call> blocks becomes Ollama's message.tool_calls,
// arguments as an object, whole and streamed.
func TestToolCallsShape(t *testing.T) {
	out := "ok\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"
	b, err := json.Marshal((&toolOutput{}).message(out))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"content":"ok","role":"assistant","tool_calls":[{"function":{"arguments":{"city":"Oslo"},"name":"get_weather"}}]}`; string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal((*toolOutput)(nil).message(out)); !strings.Contains(string(b), `"content":"ok\n\u003ctool_call\u003e`) {
		t.Errorf("without tools the markup is content: %s", b)
	}
	var text strings.Builder
	var calls []chat.ToolCall
	o := &toolOutput{}
	emit := o.stream(func(s string) { text.WriteString(s) }, func(c chat.ToolCall) { calls = append(calls, c) })
	for _, r := range out {
		emit(string(r))
	}
	o.flush(func(s string) { text.WriteString(s) }, func(c chat.ToolCall) { calls = append(calls, c) })
	if text.String() != "ok\n" || len(calls) != 1 || calls[0].Arguments != `{"city":"Oslo"}` {
		t.Errorf("streamed: text %q calls %+v", text.String(), calls)
	}
}
