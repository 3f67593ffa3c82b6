// Package openai serves OpenAI's API: POST /v1/chat/completions, POST
// /v1/completions and GET /v1/models, whole or streamed as server-sent
// events, with OpenAI's error shape {"error":{"message","type","code"}}.
package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/chat"
	"github.com/qwend/qwend/engine"
)

// Register adds the OpenAI routes to s.
func Register(s *api.Server) {
	s.Inference("POST /v1/chat/completions", engine.OperationChat, api.WriteOpenAIError, chatCompletions)
	s.Inference("POST /v1/completions", engine.OperationCompletion, api.WriteOpenAIError, completions)
	s.Inference("POST /v1/embeddings", engine.OperationEmbeddings, api.WriteOpenAIError, embeddings)
	s.Inference("POST /v1/responses", engine.OperationChat, api.WriteOpenAIError, responses)
	s.NotFound("/v1/", api.WriteOpenAIError)
	model := func() map[string]any {
		return map[string]any{
			"id": s.Model(), "object": "model", "created": s.Created().Unix(), "owned_by": "qwend",
			// the longest prompt plus output a request may have, under
			// OpenAI-compatible servers' two names for it
			"context_length": s.ContextLength(), "max_model_len": s.ContextLength(),
		}
	}
	s.Handle("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{model()}})
	})
	s.Handle("GET /v1/models/{id...}", func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("id"); !s.Serves(id) {
			api.WriteOpenAIError(w, &api.Error{Status: http.StatusNotFound, Kind: api.KindInvalid, Type: "invalid_request_error",
				Code: "model_not_found", Message: fmt.Sprintf("the model %q does not exist (serving %q)", id, s.Model())})
			return
		}
		api.WriteJSON(w, http.StatusOK, model())
	})
}

// Message accepts content as a string or as OpenAI's array of text parts.
type Message struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
	// ToolCalls are an assistant turn's calls; ToolCallID is the call a
	// tool turn answers, Name the function (optional).
	ToolCalls  []MessageToolCall `json:"tool_calls"`
	ToolCallID string            `json:"tool_call_id"`
	Name       string            `json:"name"`
}

// Content is a message's text: a string, or the text parts joined with
// newlines (as vLLM joins text-only parts), so that each part keeps its
// boundary.
type Content string

// UnmarshalJSON accepts a string, null, or an array of
// {"type":"text","text":...}; a part of another type (image_url,
// input_audio, file, ...) is refused by its type and path.
func (c *Content) UnmarshalJSON(b []byte) error {
	text, err := textParts(b, "text parts", "text")
	*c = Content(text)
	return err
}

// textParts reads a string, or an array of {"type","text"} parts of the
// given types joined with newlines; another part type is refused by its
// type and path. kinds names the accepted parts in messages.
func textParts(b []byte, kinds string, types ...string) (string, error) {
	var s string
	if err := api.Unmarshal(b, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := api.Unmarshal(b, &parts); err != nil {
		return "", &api.FieldError{Field: "content", Msg: "want a string or an array of " + kinds}
	}
	text := make([]string, len(parts))
	for i, p := range parts {
		if !slices.Contains(types, p.Type) {
			return "", &api.FieldError{Field: "content", Sub: fmt.Sprintf("[%d].type", i),
				Msg: fmt.Sprintf("%q parts are not supported; only %s are", p.Type, kinds)}
		}
		text[i] = p.Text
	}
	return strings.Join(text, "\n"), nil
}

func messages(in []Message) []chat.Message {
	out := make([]chat.Message, len(in))
	for i, m := range in {
		out[i] = chat.Message{Role: m.Role, Content: string(m.Content), ToolCallID: m.ToolCallID}
		if m.Role == "tool" {
			out[i].Name = m.Name
		}
		for _, c := range m.ToolCalls {
			out[i].ToolCalls = append(out[i].ToolCalls, chat.ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments})
		}
	}
	return out
}

// Params are the fields chat completions and completions share.
type Params struct {
	Model               string       `json:"model"`
	MaxTokens           *int         `json:"max_tokens"`
	MaxCompletionTokens *int         `json:"max_completion_tokens"`
	Temperature         *float32     `json:"temperature"`
	TopP                *float32     `json:"top_p"`
	TopK                *int         `json:"top_k"`
	MinP                *float32     `json:"min_p"`
	RepeatPenalty       *float32     `json:"repeat_penalty"`
	Seed                *int64       `json:"seed"`
	Stop                api.StopList `json:"stop"`
	Stream              bool         `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
	// ReturnProgress asks a stream for prompt_progress chunks while the
	// prompt is prefilled, as llama-server sends them: a chunk with no
	// choices and "prompt_progress": {"total", "cache", "processed",
	// "time_ms"} (prompt tokens; cache counts those reused from the KV
	// cache, processed those in it so far, cache included; milliseconds
	// since a slot took the request). Refused without stream.
	ReturnProgress *bool `json:"return_progress"`
	// Penalties and biases (api.Sampling checks their ranges).
	FrequencyPenalty *float32           `json:"frequency_penalty"`
	PresencePenalty  *float32           `json:"presence_penalty"`
	LogitBias        map[string]float32 `json:"logit_bias"`
	// Log probabilities of the output tokens: chat's logprobs (bool) and
	// top_logprobs (0-20); completions' logprobs (an int, 0-20: the
	// alternatives per token). See engine.TokenLogprob for what they are.
	Logprobs    json.RawMessage `json:"logprobs"`
	TopLogprobs *int            `json:"top_logprobs"`
	// Refused by name when asked for: qwend cannot honour them.
	Echo       *bool           `json:"echo"`
	BestOf     *int            `json:"best_of"`
	Store      *bool           `json:"store"`
	Prediction json.RawMessage `json:"prediction"`
	Audio      json.RawMessage `json:"audio"`
	Modalities []string        `json:"modalities"`
	// The deprecated function-calling fields (tools replace them) and
	// reasoning effort: refused when set.
	Functions       json.RawMessage `json:"functions"`
	FunctionCall    json.RawMessage `json:"function_call"`
	ReasoningEffort *string         `json:"reasoning_effort"`
	// Who the request is for: OpenAI's user and safety_identifier, and the
	// metadata keys user_id and feature (see api.Exchange.Identify).
	User             string            `json:"user"`
	SafetyIdentifier string            `json:"safety_identifier"`
	Metadata         map[string]string `json:"metadata"`
	// Unknown holds the keys OpenAI's API does not define here: ignored,
	// and logged once.
	Unknown api.Unknown `json:",embed"`

	tools *toolOutput // how a chat answer is read for tool calls (ChatToEngine)
	// logprobs asks for the output tokens' log probabilities (set by
	// readLogprobs, with the alternatives per token in req.TopLogprobs)
	logprobs bool
}

// readLogprobs reads the logprob fields into p.logprobs and
// req.TopLogprobs: chat's "logprobs": true with "top_logprobs" 0-20, or
// completions' "logprobs": 0-20 (OpenAI's legacy API has no top_logprobs).
func (p *Params) readLogprobs(req *engine.Request, chat bool) *api.Error {
	raw := string(p.Logprobs)
	if chat {
		var on *bool
		if len(p.Logprobs) > 0 && api.Unmarshal(p.Logprobs, &on) != nil {
			return api.BadRequest("field \"logprobs\": want true or false")
		}
		p.logprobs = on != nil && *on
		if p.TopLogprobs != nil {
			if *p.TopLogprobs < 0 || *p.TopLogprobs > engine.MaxTopLogprobs {
				return api.BadRequest("field \"top_logprobs\": %d is not between 0 and %d", *p.TopLogprobs, engine.MaxTopLogprobs)
			}
			if *p.TopLogprobs > 0 && !p.logprobs {
				return api.BadRequest("field \"top_logprobs\": set \"logprobs\": true with it")
			}
			req.TopLogprobs = *p.TopLogprobs
		}
		return nil
	}
	if p.TopLogprobs != nil {
		return api.BadRequest("field \"top_logprobs\": not a completions field; send \"logprobs\": N (the alternatives per token)")
	}
	if len(p.Logprobs) == 0 || raw == "null" {
		return nil
	}
	var n int
	if api.Unmarshal(p.Logprobs, &n) != nil || n < 0 || n > engine.MaxTopLogprobs {
		return api.BadRequest("field \"logprobs\": want an integer between 0 and %d", engine.MaxTopLogprobs)
	}
	p.logprobs, req.TopLogprobs = true, n
	return nil
}

func (p *Params) identity() api.BodyIdentity {
	return api.BodyIdentity{User: p.User, SafetyIdentifier: p.SafetyIdentifier,
		MetadataUserID: p.Metadata["user_id"], MetadataFeature: p.Metadata["feature"]}
}

// ChatRequest is the body of POST /v1/chat/completions.
type ChatRequest struct {
	Params
	Messages          []Message       `json:"messages"`
	Tools             []Tool          `json:"tools"`
	ToolChoice        *ToolChoice     `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	ResponseFormat    *ResponseFormat `json:"response_format"`

	// Template renders the messages: the served model's chat template
	// (set by the handler); nil: ChatML.
	Template *chat.Template `json:"-"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	Params
	Prompt json.RawMessage `json:"prompt"`
	Suffix string          `json:"suffix"`
}

// apply validates the shared parameters into req; defMax is the default
// max_tokens (0: up to the context).
func (p *Params) apply(req *engine.Request, defMax int) *api.Error {
	if p.N != nil && *p.N != 1 {
		return api.BadRequest("field \"n\": only 1 choice is supported")
	}
	if aerr := p.refuseUnsupported(); aerr != nil {
		return aerr
	}
	field, mt := "max_tokens", p.MaxTokens
	if p.MaxCompletionTokens != nil {
		field, mt = "max_completion_tokens", p.MaxCompletionTokens
	}
	n, aerr := api.MaxTokens(field, mt)
	if aerr != nil {
		return aerr
	}
	if mt == nil {
		n = defMax
	}
	if aerr := api.CheckStops(p.Stop); aerr != nil {
		return aerr
	}
	sp, hasSeed, aerr := api.Sampling{Temperature: p.Temperature, TopP: p.TopP, TopK: p.TopK, MinP: p.MinP,
		RepeatPenalty: p.RepeatPenalty, Seed: p.Seed, FrequencyPenalty: p.FrequencyPenalty, PresencePenalty: p.PresencePenalty,
		LogitBias: p.LogitBias}.Params(api.Defaults{Temperature: 1, TopP: 1, RepeatPenalty: 1})
	if aerr != nil {
		return aerr
	}
	req.MaxTokens, req.Sampling, req.HasSeed, req.Stop, req.Stream = n, sp, hasSeed, p.Stop, p.Stream
	return nil
}

// refuseUnsupported names the parameters OpenAI defines that qwend cannot
// honour, when a request asks for them (null, false or their off value is
// fine): a 400, never a silent drop.
func (p *Params) refuseUnsupported() *api.Error {
	switch {
	case p.Echo != nil && *p.Echo:
		return api.BadRequest("field \"echo\": echoing the prompt is not supported")
	case p.BestOf != nil && *p.BestOf != 1:
		return api.BadRequest("field \"best_of\": only 1 is supported")
	case p.Store != nil && *p.Store:
		return api.BadRequest("field \"store\": stored completions are not supported")
	case len(p.Prediction) > 0 && string(p.Prediction) != "null":
		return api.BadRequest("field \"prediction\": predicted outputs are not supported")
	case len(p.Audio) > 0 && string(p.Audio) != "null":
		return api.BadRequest("field \"audio\": audio output is not supported")
	case len(p.Functions) > 0 && string(p.Functions) != "null":
		return api.BadRequest("field \"functions\": the deprecated function calling is not supported; send tools")
	case len(p.FunctionCall) > 0 && string(p.FunctionCall) != "null":
		return api.BadRequest("field \"function_call\": the deprecated function calling is not supported; send tool_choice")
	case p.ReasoningEffort != nil:
		return api.BadRequest("field \"reasoning_effort\": the served model does not reason before answering")
	case p.ReturnProgress != nil && *p.ReturnProgress && !p.Stream:
		return api.BadRequest("field \"return_progress\": prompt progress is sent in streams only; set \"stream\": true")
	}
	for _, m := range p.Modalities {
		if m != "text" {
			return api.BadRequest("field \"modalities\": %q output is not supported", m)
		}
	}
	return nil
}

// ChatToEngine maps a decoded chat request to an engine request.
func ChatToEngine(in *ChatRequest, id string, capture bool) (*engine.Request, *api.Error) {
	req := &engine.Request{ID: id, Operation: engine.OperationChat, CaptureContent: capture}
	conv := chat.Conversation{Messages: messages(in.Messages)}
	var aerr *api.Error
	if in.tools, aerr = in.applyTools(&conv, req); aerr != nil {
		return nil, aerr
	}
	tmpl := in.Template
	if tmpl == nil {
		tmpl = chat.ChatML
	}
	segs, err := tmpl.Render(conv)
	if err != nil {
		return nil, api.BadRequest("%s", err.Error())
	}
	req.Segments = segs
	if aerr := in.apply(req, 0); aerr != nil {
		return nil, aerr
	}
	if aerr := in.readLogprobs(req, true); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

// CompletionToEngine maps a decoded completion request to an engine
// request; a suffix makes a Qwen2.5-Coder fill-in-the-middle prompt.
func CompletionToEngine(in *CompletionRequest, id string, capture bool) (*engine.Request, *api.Error) {
	var prompt string
	if len(in.Prompt) == 0 || string(in.Prompt) == "null" {
		// absent: only a suffix (fill in the middle at the start) may do
	} else if err := api.Unmarshal(in.Prompt, &prompt); err != nil {
		var list []string
		if err := api.Unmarshal(in.Prompt, &list); err != nil || len(list) != 1 {
			return nil, api.BadRequest("field \"prompt\": want a string (or an array holding one string)")
		}
		prompt = list[0]
	}
	if prompt == "" && in.Suffix == "" {
		return nil, api.BadRequest("field \"prompt\": empty")
	}
	req := &engine.Request{ID: id, Operation: engine.OperationCompletion, CaptureContent: capture}
	if in.Suffix != "" {
		req.Segments = chat.FIM(prompt, in.Suffix)
	} else {
		req.Prompt = prompt
	}
	if aerr := in.apply(req, 16); aerr != nil {
		return nil, aerr
	}
	if aerr := in.readLogprobs(req, false); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

func chatCompletions(x *api.Exchange) *api.Error {
	var in ChatRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	if aerr := x.Identify(in.identity()); aerr != nil {
		return aerr
	}
	x.IgnoredKeys("", in.Unknown)
	var aerr *api.Error
	if in.Template, aerr = templateFor(x); aerr != nil {
		return aerr
	}
	req, aerr := ChatToEngine(&in, x.ResponseID("chatcmpl-"), x.Server().CaptureContent())
	if aerr != nil {
		return aerr
	}
	return run(x, &in.Params, req, "chat.completion")
}

func completions(x *api.Exchange) *api.Error {
	var in CompletionRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	if aerr := x.Identify(in.identity()); aerr != nil {
		return aerr
	}
	x.IgnoredKeys("", in.Unknown)
	req, aerr := CompletionToEngine(&in, x.ResponseID("cmpl-"), x.Server().CaptureContent())
	if aerr != nil {
		return aerr
	}
	return run(x, &in.Params, req, "text_completion")
}

// Usage is OpenAI's usage object.
type Usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func usageOf(r engine.Result) *Usage {
	u := &Usage{PromptTokens: r.PromptTokens, CompletionTokens: r.OutputTokens, TotalTokens: r.PromptTokens + r.OutputTokens}
	u.PromptTokensDetails.CachedTokens = r.CachedTokens
	return u
}

// completionLogprobs is completions' (legacy) logprobs: tokens,
// token_logprobs, top_logprobs (an object of token text to log
// probability per token, likeliest first; of two ids with one text, the
// likelier) and text_offset (characters from the start of the output, as
// OpenAI and vLLM count them: Unicode code points; c counts the text
// before these tokens, across calls).
func completionLogprobs(lps []engine.TokenLogprob, c *charCounter) map[string]any {
	tokens := make([]string, len(lps))
	logprobs := make([]float64, len(lps))
	top := make([]orderedLogprobs, len(lps))
	offsets := make([]int, len(lps))
	for i, lp := range lps {
		tokens[i], logprobs[i], offsets[i] = lp.Token, lp.Logprob, c.add(lp.Token)
		top[i] = orderedLogprobs{}
		for _, a := range lp.Top {
			if !slices.ContainsFunc(top[i], func(b engine.TopLogprob) bool { return b.Token == a.Token }) {
				top[i] = append(top[i], a)
			}
		}
	}
	return map[string]any{"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": top, "text_offset": offsets}
}

// charCounter counts the characters (code points) of a text given in
// pieces that may split a UTF-8 sequence; the bytes of an unfinished
// sequence count one each until it completes, as utf8.RuneCount counts
// them.
type charCounter struct {
	tail  []byte // an unfinished UTF-8 sequence at the end
	runes int    // characters before the tail
}

// add appends a piece and returns the characters before it.
func (c *charCounter) add(piece string) int {
	before := c.runes + len(c.tail)
	c.tail = append(c.tail, piece...)
	// count every complete character, keeping an unfinished one
	for len(c.tail) > 0 && utf8.FullRune(c.tail) {
		_, n := utf8.DecodeRune(c.tail)
		c.runes++
		c.tail = c.tail[n:]
	}
	return before
}

// orderedLogprobs is a JSON object of token text to log probability in
// the slice's order (the likeliest first), which a Go map would sort.
type orderedLogprobs []engine.TopLogprob

// MarshalJSON writes {"<token>": <logprob>, ...}.
func (o orderedLogprobs) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, a := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(a.Token)
		if err != nil {
			return nil, err
		}
		b = append(b, k...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, a.Logprob, 'g', -1, 64)
	}
	return append(b, '}'), nil
}

// run runs req and writes an OpenAI response, streamed or whole.
func run(x *api.Exchange, p *Params, req *engine.Request, object string) *api.Error {
	x.Rec.Request = req
	eng, aerr := x.Engine(p.Model)
	if aerr != nil {
		return aerr
	}
	model := x.Server().Model()
	created := time.Now().Unix()
	isChat := object == "chat.completion"
	fp := eng.Info().Fingerprint // system_fingerprint: what a seed reproduces within
	includeUsage := p.StreamOptions != nil && p.StreamOptions.IncludeUsage

	// the output tokens' logprobs, gathered until the text that holds
	// them goes out (chat's logprobs.content, or completions' shape)
	var lps []engine.TokenLogprob
	var chars charCounter // completions' text so far, for text_offset
	if p.logprobs {
		req.Logprobs = func(b []engine.TokenLogprob) { lps = append(lps, b...) }
	}
	takeLogprobs := func() any {
		if !p.logprobs {
			return nil
		}
		b := lps
		lps = nil
		if isChat {
			return map[string]any{"content": api.TokenLogprobs(b, false), "refusal": nil}
		}
		return completionLogprobs(b, &chars)
	}

	if !p.Stream {
		var text strings.Builder
		res, err := x.Generate(eng, req, func(piece string) { text.WriteString(piece) })
		if err != nil {
			return api.FromEngine(err)
		}
		choice := map[string]any{"index": 0, "finish_reason": res.FinishReason, "logprobs": takeLogprobs()}
		if isChat {
			choice["message"] = p.tools.message(text.String(), choice)
			x.Rec.Result.FinishReason = choice["finish_reason"].(string) // tool_calls, as answered
		} else {
			choice["text"] = text.String()
		}
		api.WriteJSON(x.W, http.StatusOK, map[string]any{
			"id": req.ID, "object": object, "created": created, "model": model, "system_fingerprint": fp,
			"choices": []any{choice}, "usage": usageOf(res),
		})
		return nil
	}

	st := api.NewStreamer(x.W, "text/event-stream")
	chunkObject := object
	if isChat {
		chunkObject = "chat.completion.chunk"
	}
	chunk := func(delta string, finish *string, first bool) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": finish, "logprobs": nil}
		if isChat {
			d := map[string]string{"content": delta}
			if first {
				d["role"] = "assistant"
			}
			c["delta"] = d
		} else {
			c["text"] = delta
		}
		m := map[string]any{"id": req.ID, "object": chunkObject, "created": created, "model": model,
			"system_fingerprint": fp, "choices": []any{c}}
		if includeUsage {
			m["usage"] = nil // OpenAI: null on every chunk but the last
		}
		return m
	}
	// the events between the first and the last differ only in their text
	delta, err := api.NewDeltaEvent("data: ", chunk(api.DeltaMark, nil, false), "\n\n")
	if err != nil {
		return api.Internal(err.Error())
	}
	// headers go out once the request is admitted, and a comment line every
	// KeepAliveInterval until the first token (a long prefill)
	req.Queued = st.Start
	req.Idle, req.IdleInterval = func() { st.Write(api.SSEComment) }, api.KeepAliveInterval
	if p.ReturnProgress != nil && *p.ReturnProgress {
		req.Progress = func(pp engine.PromptProgress) {
			m := map[string]any{"id": req.ID, "object": chunkObject, "created": created, "model": model,
				"system_fingerprint": fp, "choices": []any{}, "prompt_progress": map[string]any{
					"total": pp.Total, "cache": pp.Cached, "processed": pp.Processed, "time_ms": pp.Elapsed.Milliseconds()}}
			if includeUsage {
				m["usage"] = nil // OpenAI: null on every chunk but the last
			}
			st.SSE(m)
		}
	}
	first := true
	emit := func(piece string) {
		if first || p.logprobs {
			c := chunk(piece, nil, first)
			c["choices"].([]any)[0].(map[string]any)["logprobs"] = takeLogprobs()
			st.SSE(c)
			first = false
			return
		}
		st.Write(delta.Render(piece))
	}
	// a tool call goes out whole, in one delta
	call := func(i int, c chat.ToolCall) {
		m := chunk("", nil, first)
		d := map[string]any{"tool_calls": []any{toolCallDelta(i, c)}}
		if first {
			d["role"] = "assistant"
		}
		m["choices"].([]any)[0].(map[string]any)["delta"] = d
		st.SSE(m)
		first = false
	}
	res, err := x.Generate(eng, req, p.tools.stream(emit, call))
	if err != nil {
		ae := api.FromEngine(err)
		if !st.Started() {
			return ae
		}
		st.SSE(api.OpenAIErrorBody(ae))
		st.Write([]byte("data: [DONE]\n\n"))
		return nil
	}
	p.tools.flush(emit, call)
	reason := res.FinishReason
	if p.tools.calls() > 0 && reason == engine.FinishStop {
		reason = "tool_calls"
	}
	x.Rec.Result.FinishReason = reason // the service log's, as answered
	last := chunk("", &reason, first)
	if len(lps) > 0 { // tokens whose text a tool call took
		last["choices"].([]any)[0].(map[string]any)["logprobs"] = takeLogprobs()
	}
	st.SSE(last)
	if includeUsage {
		st.SSE(map[string]any{"id": req.ID, "object": chunkObject, "created": created, "model": model,
			"system_fingerprint": fp, "choices": []any{}, "usage": usageOf(res)})
	}
	st.Write([]byte("data: [DONE]\n\n"))
	return nil
}
