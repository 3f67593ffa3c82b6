package openai

import (
	"testing"

	"github.com/qwend/qwend/api"
)

// Every request decoder takes untrusted bytes: none may panic, and what it
// accepts must map to an engine request, or be refused, without panicking.

func FuzzChatRequest(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stop":["\n"]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add([]byte(`{"messages":[],"temperature":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in ChatRequest
		if api.DecodeJSON(data, &in) != nil {
			return
		}
		req, aerr := ChatToEngine(&in, "id", false)
		if aerr == nil && len(req.Segments) == 0 {
			t.Fatal("accepted messages rendered to nothing")
		}
	})
}

func FuzzCompletionRequest(f *testing.F) {
	f.Add([]byte(`{"prompt":"def f(","suffix":"return x","max_tokens":8}`))
	f.Add([]byte(`{"prompt":["one"],"n":1,"seed":-5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in CompletionRequest
		if api.DecodeJSON(data, &in) != nil {
			return
		}
		req, aerr := CompletionToEngine(&in, "id", false)
		if aerr == nil && req.Prompt == "" && len(req.Segments) == 0 {
			t.Fatal("accepted an empty prompt")
		}
	})
}
