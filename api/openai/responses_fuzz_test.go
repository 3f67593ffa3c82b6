package openai

import (
	"testing"

	"github.com/qwend/qwend/api"
)

// The Responses decoder takes untrusted bytes: it may not panic, and what
// it accepts maps to an engine request, or is refused, without panicking.
func FuzzResponsesRequest(f *testing.F) {
	f.Add([]byte(`{"input":"hi","instructions":"be brief","max_output_tokens":3,"text":{"format":{"type":"json_object"}}}`))
	f.Add([]byte(`{"input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"x"}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":"required"}`))
	f.Add([]byte(`{"input":[],"store":true,"reasoning":{"effort":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in ResponsesRequest
		if api.DecodeJSON(data, &in) != nil {
			return
		}
		req, c, aerr := ResponsesToEngine(&in, "id", false)
		if aerr == nil && (len(req.Segments) == 0 || c == nil) {
			t.Fatal("accepted input rendered to nothing")
		}
	})
}
