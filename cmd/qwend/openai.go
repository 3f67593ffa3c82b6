package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/qwend/qwend/engine"
)

// chatMessage accepts content as a string or as OpenAI's array of parts.
type chatMessage struct {
	Role    string      `json:"role"`
	Content chatContent `json:"content"`
}

type chatContent string

func (c *chatContent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = chatContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return &fieldError{"content", "want a string or an array of text parts"}
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return &fieldError{"content", "only text parts are supported, got type " + p.Type}
		}
		sb.WriteString(p.Text)
	}
	*c = chatContent(sb.String())
	return nil
}

// fimSegments is Qwen2.5-Coder's fill-in-the-middle prompt.
func fimSegments(prefix, suffix string) []engine.Segment {
	return []engine.Segment{
		{Text: "<|fim_prefix|>", Special: true}, {Text: prefix},
		{Text: "<|fim_suffix|>", Special: true}, {Text: suffix},
		{Text: "<|fim_middle|>", Special: true},
	}
}

// chatRequest renders messages into a chat request with a new response id.
func (s *server) chatRequest(r *http.Request, idPrefix string, msgs []chatMessage) (*engine.Request, *apiError) {
	segs, aerr := renderChatML(msgs)
	if aerr != nil {
		return nil, aerr
	}
	return &engine.Request{ID: responseID(idPrefix, r), Operation: engine.OperationChat, Segments: segs, CaptureContent: s.cfg.CaptureContent}, nil
}

// renderChatML renders messages with Qwen's ChatML template and opens the
// assistant's turn. Template text is special; message content is not.
func renderChatML(msgs []chatMessage) ([]engine.Segment, *apiError) {
	if len(msgs) == 0 {
		return nil, badRequest("field \"messages\": at least one message is required")
	}
	segs := make([]engine.Segment, 0, 3*len(msgs)+1)
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "tool":
		default:
			return nil, badRequest("field \"messages[%d].role\": %q is not system, user, assistant or tool", i, m.Role)
		}
		segs = append(segs,
			engine.Segment{Text: "<|im_start|>" + m.Role + "\n", Special: true},
			engine.Segment{Text: string(m.Content)},
			engine.Segment{Text: "<|im_end|>\n", Special: true})
	}
	return append(segs, engine.Segment{Text: "<|im_start|>assistant\n", Special: true}), nil
}

type openAIParams struct {
	Model               string   `json:"model"`
	MaxTokens           *int     `json:"max_tokens"`
	MaxCompletionTokens *int     `json:"max_completion_tokens"`
	Temperature         *float32 `json:"temperature"`
	TopP                *float32 `json:"top_p"`
	TopK                *int     `json:"top_k"`
	MinP                *float32 `json:"min_p"`
	RepeatPenalty       *float32 `json:"repeat_penalty"`
	Seed                *int64   `json:"seed"`
	Stop                stopList `json:"stop"`
	Stream              bool     `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
}

type chatRequest struct {
	openAIParams
	Messages []chatMessage `json:"messages"`
}

type completionRequest struct {
	openAIParams
	Prompt json.RawMessage `json:"prompt"`
	Suffix string          `json:"suffix"`
}

// toEngine validates the shared OpenAI parameters.
func (p *openAIParams) toEngine(req *engine.Request, defMax int) *apiError {
	if p.N != nil && *p.N != 1 {
		return badRequest("field \"n\": only 1 choice is supported")
	}
	field, mt := "max_tokens", p.MaxTokens
	if p.MaxCompletionTokens != nil {
		field, mt = "max_completion_tokens", p.MaxCompletionTokens
	}
	n, aerr := checkMaxTokens(field, mt)
	if aerr != nil {
		return aerr
	}
	if mt == nil {
		n = defMax
	}
	if aerr := checkStops(p.Stop); aerr != nil {
		return aerr
	}
	sp, hasSeed, aerr := samplingInput{Temperature: p.Temperature, TopP: p.TopP, TopK: p.TopK, MinP: p.MinP,
		RepeatPenalty: p.RepeatPenalty, Seed: p.Seed}.params(1, 1)
	if aerr != nil {
		return aerr
	}
	req.MaxTokens, req.Sampling, req.HasSeed, req.Stop, req.Stream = n, sp, hasSeed, p.Stop, p.Stream
	return nil
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func usageOf(r engine.Result) *usage {
	u := &usage{PromptTokens: r.PromptTokens, CompletionTokens: r.OutputTokens, TotalTokens: r.PromptTokens + r.OutputTokens}
	u.PromptTokensDetails.CachedTokens = r.CachedTokens
	return u
}

func (s *server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var in chatRequest
	if aerr := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	req, aerr := s.chatRequest(r, "chatcmpl-", in.Messages)
	if aerr == nil {
		aerr = in.toEngine(req, 0)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	s.runOpenAI(w, r, in.Model, &in.openAIParams, req, "chat.completion")
}

func (s *server) completions(w http.ResponseWriter, r *http.Request) {
	var in completionRequest
	if aerr := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	var prompt string
	if err := json.Unmarshal(in.Prompt, &prompt); err != nil {
		var list []string
		if err := json.Unmarshal(in.Prompt, &list); err != nil || len(list) != 1 {
			writeError(w, badRequest("field \"prompt\": want a string (or an array holding one string)"))
			return
		}
		prompt = list[0]
	}
	if prompt == "" && in.Suffix == "" {
		writeError(w, badRequest("field \"prompt\": empty"))
		return
	}
	req := &engine.Request{ID: responseID("cmpl-", r), Operation: engine.OperationCompletion, CaptureContent: s.cfg.CaptureContent}
	if in.Suffix != "" {
		// Qwen2.5-Coder fill-in-the-middle
		req.Segments = fimSegments(prompt, in.Suffix)
	} else {
		req.Prompt = prompt
	}
	if aerr := in.toEngine(req, 16); aerr != nil {
		writeError(w, aerr)
		return
	}
	s.runOpenAI(w, r, in.Model, &in.openAIParams, req, "text_completion")
}

// runOpenAI runs req and writes an OpenAI response, streamed or whole.
func (s *server) runOpenAI(w http.ResponseWriter, r *http.Request, model string, p *openAIParams, req *engine.Request, object string) {
	eng, aerr := s.engineFor(model)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	created := time.Now().Unix()
	chat := object == "chat.completion"

	if !p.Stream {
		var text strings.Builder
		res, err := eng.Generate(ctx, req, func(piece string) { text.WriteString(piece) })
		if err != nil {
			writeError(w, engineError(err))
			return
		}
		choice := map[string]any{"index": 0, "finish_reason": res.FinishReason}
		if chat {
			choice["message"] = map[string]string{"role": "assistant", "content": text.String()}
		} else {
			choice["text"] = text.String()
			choice["logprobs"] = nil
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": req.ID, "object": object, "created": created, "model": s.model.Name,
			"choices": []any{choice}, "usage": usageOf(res),
		})
		return
	}

	st := newStreamer(w, "text/event-stream")
	chunkObject := object
	if chat {
		chunkObject = "chat.completion.chunk"
	}
	chunk := func(delta string, finish *string, first bool) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": finish}
		if chat {
			d := map[string]string{"content": delta}
			if first {
				d["role"] = "assistant"
			}
			c["delta"] = d
		} else {
			c["text"] = delta
			c["logprobs"] = nil
		}
		return map[string]any{"id": req.ID, "object": chunkObject, "created": created, "model": s.model.Name, "choices": []any{c}}
	}
	// the events between the first and the last differ only in their text
	delta, err := newDeltaEvent("data: ", chunk(deltaMark, nil, false), "\n\n")
	if err != nil {
		writeError(w, &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()})
		return
	}
	first := true
	res, err := eng.Generate(ctx, req, func(piece string) {
		if first {
			st.sse(chunk(piece, nil, true))
			first = false
			return
		}
		st.write(delta.render(piece))
	})
	if err != nil {
		ae := engineError(err)
		if !st.started {
			writeError(w, ae)
			return
		}
		st.sse(errorJSON(ae))
		st.write([]byte("data: [DONE]\n\n"))
		return
	}
	reason := res.FinishReason
	st.sse(chunk("", &reason, first))
	if p.StreamOptions != nil && p.StreamOptions.IncludeUsage {
		st.sse(map[string]any{"id": req.ID, "object": chunkObject, "created": created, "model": s.model.Name,
			"choices": []any{}, "usage": usageOf(res)})
	}
	st.write([]byte("data: [DONE]\n\n"))
}
