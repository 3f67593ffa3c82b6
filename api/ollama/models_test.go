package ollama_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/qwend/qwend/api/apitest"
)

// The model endpoints Ollama clients call before anything else.
func TestModelEndpoints(t *testing.T) {
	ts := apitest.New(t, apitest.Options{}, register)
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := get("GET", "/"); st != 200 || b != "Ollama is running" {
		t.Errorf("GET /: %d %q", st, b)
	}
	if st, b := get("HEAD", "/"); st != 200 || b != "" {
		t.Errorf("HEAD /: %d %q", st, b)
	}
	var tags struct {
		Models []struct {
			Name, Model, Digest string
			Size                int64
			Details             struct {
				F   string `json:"format"`
				Fam string `json:"family"`
				PS  string `json:"parameter_size"`
				Q   string `json:"quantization_level"`
			} `json:"details"`
		} `json:"models"`
	}
	_, b := get("GET", "/api/tags")
	if err := json.Unmarshal([]byte(b), &tags); err != nil || len(tags.Models) != 1 {
		t.Fatalf("tags %s: %v", b, err)
	}
	m := tags.Models[0]
	if m.Name != "tiny:latest" || m.Digest != "abc" || m.Size != 1234 || m.Details.F != "gguf" || m.Details.Fam != "qwen2" || m.Details.PS != "1.5B" || m.Details.Q != "F32" {
		t.Errorf("tag %+v", m)
	}
	if st, b := get("GET", "/api/ps"); st != 200 || !strings.Contains(b, `"expires_at"`) || !strings.Contains(b, `"name":"tiny:latest"`) {
		t.Errorf("ps: %d %s", st, b)
	}
	for _, name := range []string{"tiny", "tiny:latest"} {
		resp, b := ts.Post(t, "/api/show", `{"model":"`+name+`"}`)
		var show struct {
			Capabilities []string       `json:"capabilities"`
			ModelInfo    map[string]any `json:"model_info"`
		}
		json.Unmarshal(b, &show)
		if resp.StatusCode != 200 || show.ModelInfo["qwen2.context_length"] != 512.0 || !strings.Contains(strings.Join(show.Capabilities, ","), "tools") {
			t.Errorf("show %s: %d %s", name, resp.StatusCode, b)
		}
	}
	if resp, b := ts.Post(t, "/api/show", `{"model":"llama3"}`); resp.StatusCode != 404 || !strings.Contains(string(b), `"error":"`) {
		t.Errorf("show of another model: %d %s", resp.StatusCode, b)
	}
	// a generation naming the model with its tag runs
	if resp, b := ts.Post(t, "/api/generate", `{"model":"tiny:latest","prompt":"x","stream":false,"options":{"num_predict":1}}`); resp.StatusCode != 200 {
		t.Errorf("tiny:latest: %d %s", resp.StatusCode, b)
	}
}

func TestEmbed(t *testing.T) {
	ts := apitest.New(t, apitest.Options{ContextPerSlot: 128}, register)
	resp, b := ts.Post(t, "/api/embed", `{"model":"tiny","input":["a","`+strings.Repeat("lorem ipsum ", 100)+`"]}`)
	var r struct {
		Embeddings      [][]float32 `json:"embeddings"`
		PromptEvalCount int         `json:"prompt_eval_count"`
	}
	// truncate is on by default: the long input is cut to the context
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 || len(r.Embeddings) != 2 || r.PromptEvalCount > 1+128+4 {
		t.Fatalf("%d %.300s: %v", resp.StatusCode, b, err)
	}
	if resp, b := ts.Post(t, "/api/embed", `{"input":"`+strings.Repeat("lorem ipsum ", 100)+`","truncate":false}`); resp.StatusCode != 400 || !strings.Contains(string(b), `"error":"`) {
		t.Errorf("truncate false: %d %s", resp.StatusCode, b)
	}
	if resp, b := ts.Post(t, "/api/embeddings", `{"model":"tiny","prompt":"hello"}`); resp.StatusCode != 200 || !strings.Contains(string(b), `"embedding":[`) {
		t.Errorf("legacy: %d %.200s", resp.StatusCode, b)
	}
	if resp, _ := ts.Post(t, "/api/embed", `{"model":"other","input":"x"}`); resp.StatusCode != 404 {
		t.Errorf("another model: %d", resp.StatusCode)
	}
}
