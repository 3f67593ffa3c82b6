package main

import (
	"testing"

	"github.com/qwend/qwend/engine"
)

// Every request decoder takes untrusted bytes: none may panic, and what it
// accepts must validate into an engine request without panicking either.

func FuzzChatRequest(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stop":["\n"]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add([]byte(`{"messages":[],"temperature":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in chatRequest
		if decodeJSON(data, &in) != nil {
			return
		}
		if segs, aerr := renderChatML(in.Messages); aerr == nil && len(segs) == 0 {
			t.Fatal("accepted messages rendered to nothing")
		}
		_ = in.toEngine(&engine.Request{}, 0)
	})
}

func FuzzCompletionRequest(f *testing.F) {
	f.Add([]byte(`{"prompt":"def f(","suffix":"return x","max_tokens":8}`))
	f.Add([]byte(`{"prompt":["one"],"n":1,"seed":-5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in completionRequest
		if decodeJSON(data, &in) != nil {
			return
		}
		_ = in.toEngine(&engine.Request{}, 16)
	})
}

func FuzzOllamaGenerate(f *testing.F) {
	f.Add([]byte(`{"model":"m","prompt":"hi","options":{"num_predict":5,"stop":"x","top_k":3}}`))
	f.Add([]byte(`{"prompt":"hi","raw":true,"stream":false}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in ollamaGenerateRequest
		if decodeJSON(data, &in) != nil {
			return
		}
		_ = in.toEngine(&engine.Request{})
	})
}

func FuzzOllamaChat(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"options":{"temperature":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in ollamaChatRequest
		if decodeJSON(data, &in) != nil {
			return
		}
		_, _ = renderChatML(in.Messages)
		_ = in.toEngine(&engine.Request{})
	})
}
