package openai

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"

	"github.com/qwend/qwend/api"
)

// EmbeddingsRequest is the body of POST /v1/embeddings.
type EmbeddingsRequest struct {
	Model          string           `json:"model"`
	Input          api.StringOrMany `json:"input"`
	EncodingFormat string           `json:"encoding_format"` // "float" (default) or "base64"
	Dimensions     *int             `json:"dimensions"`
	User           string           `json:"user"`
	Unknown        api.Unknown      `json:",embed"`
}

// MaxEmbeddingInputs bounds the inputs of one embeddings request.
const MaxEmbeddingInputs = 2048

func embeddings(x *api.Exchange) *api.Error {
	var in EmbeddingsRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	if aerr := x.Identify(api.BodyIdentity{User: in.User}); aerr != nil {
		return aerr
	}
	x.IgnoredKeys("", in.Unknown)
	switch {
	case len(in.Input) == 0:
		return api.BadRequest("field \"input\": a string or an array of strings is required")
	case len(in.Input) > MaxEmbeddingInputs:
		return api.BadRequest("field \"input\": at most %d inputs, got %d", MaxEmbeddingInputs, len(in.Input))
	case in.Dimensions != nil:
		return api.BadRequest("field \"dimensions\": shortened embeddings are not supported")
	case in.EncodingFormat != "" && in.EncodingFormat != "float" && in.EncodingFormat != "base64":
		return api.BadRequest("field \"encoding_format\": %q is not float or base64", in.EncodingFormat)
	}
	eng, aerr := x.Engine(in.Model)
	if aerr != nil {
		return aerr
	}
	out, err := x.Embed(eng, in.Input, false)
	if err != nil {
		return api.FromEngine(err)
	}
	data := make([]map[string]any, len(out))
	tokens := 0
	for i, o := range out {
		var v any = o.Vector
		if in.EncodingFormat == "base64" {
			// little-endian float32s, as OpenAI sends them
			b := make([]byte, 4*len(o.Vector))
			for j, f := range o.Vector {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			v = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
		tokens += o.Tokens
	}
	api.WriteJSON(x.W, http.StatusOK, map[string]any{"object": "list", "data": data, "model": x.Server().Model(),
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
	return nil
}
