package ollama

import (
	"testing"

	"github.com/qwend/qwend/api"
)

func FuzzGenerateRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","prompt":"hi","options":{"num_predict":5,"stop":"x","top_k":3}}`))
	f.Add([]byte(`{"prompt":"hi","raw":true,"stream":false}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in GenerateRequest
		if api.DecodeJSON(data, &in) != nil {
			return
		}
		req, aerr := GenerateToEngine(&in, "id", false)
		if aerr == nil && req.Prompt == "" && len(req.Segments) == 0 {
			t.Fatal("accepted an empty prompt")
		}
	})
}

func FuzzChatRequest(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"options":{"temperature":0}}`))
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
