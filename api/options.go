package api

import (
	"strconv"
	"time"

	"github.com/qwend/qwend/engine"
)

// StopList is a "stop" field: a string or an array of strings.
type StopList []string

// UnmarshalJSON accepts a string, an array of strings, or null (absent).
func (s *StopList) UnmarshalJSON(b []byte) error {
	v, err := stringOrMany(b, "stop")
	*s = v
	return err
}

// stringOrMany reads a string, an array of strings, or null (nil).
func stringOrMany(b []byte, field string) ([]string, error) {
	if string(b) == "null" {
		return nil, nil
	}
	var one string
	if err := Unmarshal(b, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := Unmarshal(b, &many); err != nil {
		return nil, &FieldError{Field: field, Msg: "want a string or an array of strings"}
	}
	return many, nil
}

// RawJSON is a JSON value kept as sent; null reads as absent (nil).
type RawJSON []byte

// UnmarshalJSON keeps b, or nil for null.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = nil
		return nil
	}
	*r = append((*r)[:0], b...)
	return nil
}

// Sampling holds the sampling fields both protocols share; nil is absent.
type Sampling struct {
	Temperature   *float32
	TopP          *float32
	TopK          *int
	MinP          *float32
	RepeatPenalty *float32
	RepeatLastN   *int
	Seed          *int64
	// FrequencyPenalty and PresencePenalty are OpenAI's (and Ollama's), in
	// [-2, 2].
	FrequencyPenalty *float32
	PresencePenalty  *float32
	// LogitBias maps token ids (decimal strings, as OpenAI sends them) to a
	// bias in [-100, 100].
	LogitBias map[string]float32
}

// Bounds on the integers a client sends, checked before any arithmetic so
// that nothing downstream can overflow: out of range is a 400 naming the
// field.
const (
	// MaxTokensLimit bounds max_tokens, max_completion_tokens and
	// num_predict: 2^20, above any Qwen context (131,072 tokens at most).
	MaxTokensLimit = 1 << 20
	// TopKLimit bounds top_k: 2^20, above any Qwen vocabulary (151,936).
	TopKLimit = 1 << 20
	// RepeatLastNLimit bounds repeat_last_n (tokens looked back on).
	RepeatLastNLimit = 1 << 20
)

// Defaults are a protocol's values for absent sampling fields.
type Defaults struct {
	Temperature, TopP, RepeatPenalty float32
}

// Params validates the fields, naming the one at fault, and fills in the
// defaults (top_k 40, min_p 0, repeat_last_n 64). hasSeed reports whether
// the client gave a seed; without one the seed is the clock's.
func (in Sampling) Params(def Defaults) (p engine.SamplingParams, hasSeed bool, _ *Error) {
	p = engine.SamplingParams{
		Temperature: optional(in.Temperature, def.Temperature), TopP: optional(in.TopP, def.TopP), TopK: optional(in.TopK, 40),
		MinP: optional(in.MinP, 0), RepeatPenalty: optional(in.RepeatPenalty, def.RepeatPenalty), RepeatLastN: optional(in.RepeatLastN, 64),
	}
	switch {
	case p.Temperature < 0 || p.Temperature > 2:
		return p, false, BadRequest("field \"temperature\": %g is not in [0, 2]", p.Temperature)
	case p.TopP < 0 || p.TopP > 1:
		return p, false, BadRequest("field \"top_p\": %g is not in [0, 1]", p.TopP)
	case p.TopK < 0 || p.TopK > TopKLimit:
		return p, false, BadRequest("field \"top_k\": %d is not in [0, %d]", p.TopK, TopKLimit)
	case p.MinP < 0 || p.MinP > 1:
		return p, false, BadRequest("field \"min_p\": %g is not in [0, 1]", p.MinP)
	case p.RepeatPenalty < 0:
		return p, false, BadRequest("field \"repeat_penalty\": %g is negative", p.RepeatPenalty)
	case p.RepeatLastN < -1 || p.RepeatLastN > RepeatLastNLimit:
		return p, false, BadRequest("field \"repeat_last_n\": %d is not in [-1, %d]", p.RepeatLastN, RepeatLastNLimit)
	}
	p.FrequencyPenalty, p.PresencePenalty = optional(in.FrequencyPenalty, 0), optional(in.PresencePenalty, 0)
	switch {
	case p.FrequencyPenalty < -2 || p.FrequencyPenalty > 2:
		return p, false, BadRequest("field \"frequency_penalty\": %g is not in [-2, 2]", p.FrequencyPenalty)
	case p.PresencePenalty < -2 || p.PresencePenalty > 2:
		return p, false, BadRequest("field \"presence_penalty\": %g is not in [-2, 2]", p.PresencePenalty)
	case len(in.LogitBias) > 1024:
		return p, false, BadRequest("field \"logit_bias\": at most 1024 tokens, got %d", len(in.LogitBias))
	}
	for k, v := range in.LogitBias {
		t, err := strconv.ParseInt(k, 10, 32)
		if err != nil || t < 0 {
			return p, false, BadRequest("field \"logit_bias\": key %q is not a token id", k)
		}
		if v < -100 || v > 100 {
			return p, false, BadRequest("field \"logit_bias.%s\": %g is not in [-100, 100]", k, v)
		}
		if p.LogitBias == nil {
			p.LogitBias = map[int]float32{}
		}
		p.LogitBias[int(t)] = v
	}
	if in.Seed != nil {
		p.Seed = uint64(*in.Seed)
		return p, true, nil
	}
	p.Seed = uint64(time.Now().UnixNano())
	return p, false, nil
}

func optional[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// MaxTokens checks a max_tokens-like field: absent or -1 is 0 (up to the
// context), otherwise in [1, MaxTokensLimit].
func MaxTokens(field string, v *int) (int, *Error) {
	if v == nil || *v == -1 {
		return 0, nil
	}
	if *v < 1 || *v > MaxTokensLimit {
		return 0, BadRequest("field %q: %d is not in [1, %d] (or -1: up to the context)", field, *v, MaxTokensLimit)
	}
	return *v, nil
}

// CheckStops allows up to 16 non-empty stop strings.
func CheckStops(stops []string) *Error {
	if len(stops) > 16 {
		return BadRequest("field \"stop\": at most 16 stop strings, got %d", len(stops))
	}
	for _, s := range stops {
		if s == "" {
			return BadRequest("field \"stop\": empty stop string")
		}
	}
	return nil
}

// StringOrMany is a field that takes a string or an array of strings
// (OpenAI's and Ollama's embedding input); null is absent.
type StringOrMany []string

// UnmarshalJSON accepts a string, an array of strings, or null.
func (s *StringOrMany) UnmarshalJSON(b []byte) error {
	v, err := stringOrMany(b, "input")
	*s = v
	return err
}
