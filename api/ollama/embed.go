package ollama

import (
	"net/http"
	"time"

	"github.com/qwend/qwend/api"
)

// EmbedRequest is the body of POST /api/embed.
type EmbedRequest struct {
	Model      string           `json:"model"`
	Input      api.StringOrMany `json:"input"`
	Truncate   *bool            `json:"truncate"` // default true: inputs over the context are cut
	Dimensions *int             `json:"dimensions"`
	Options    *Options         `json:"options"`
	KeepAlive  *KeepAlive       `json:"keep_alive"`
	Unknown    api.Unknown      `json:",embed"`
}

// EmbeddingsRequest is the body of the older POST /api/embeddings.
type EmbeddingsRequest struct {
	Model     string      `json:"model"`
	Prompt    string      `json:"prompt"`
	Options   *Options    `json:"options"`
	KeepAlive *KeepAlive  `json:"keep_alive"`
	Unknown   api.Unknown `json:",embed"`
}

func embed(x *api.Exchange) *api.Error {
	var in EmbedRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	x.IgnoredKeys("", in.Unknown)
	switch {
	case len(in.Input) == 0:
		return api.BadRequest("field \"input\": a string or an array of strings is required")
	case len(in.Input) > 2048:
		return api.BadRequest("field \"input\": at most 2048 inputs, got %d", len(in.Input))
	case in.Dimensions != nil:
		return api.BadRequest("field \"dimensions\": shortened embeddings are not supported")
	}
	eng, aerr := x.Engine(in.Model)
	if aerr != nil {
		return aerr
	}
	start := time.Now()
	out, err := x.Embed(eng, in.Input, in.Truncate == nil || *in.Truncate)
	if err != nil {
		return api.FromEngine(err)
	}
	vecs := make([][]float32, len(out))
	tokens := 0
	for i, o := range out {
		vecs[i], tokens = o.Vector, tokens+o.Tokens
	}
	api.WriteJSON(x.W, http.StatusOK, map[string]any{"model": x.Server().Model(), "embeddings": vecs,
		"total_duration": time.Since(start).Nanoseconds(), "load_duration": 0, "prompt_eval_count": tokens})
	return nil
}

func embeddingsLegacy(x *api.Exchange) *api.Error {
	var in EmbeddingsRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	x.IgnoredKeys("", in.Unknown)
	eng, aerr := x.Engine(in.Model)
	if aerr != nil {
		return aerr
	}
	if in.Prompt == "" {
		// Ollama answers an empty prompt with an empty embedding
		api.WriteJSON(x.W, http.StatusOK, map[string]any{"embedding": []float32{}})
		return nil
	}
	out, err := x.Embed(eng, []string{in.Prompt}, true)
	if err != nil {
		return api.FromEngine(err)
	}
	api.WriteJSON(x.W, http.StatusOK, map[string]any{"embedding": out[0].Vector})
	return nil
}
