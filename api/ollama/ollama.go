// Package ollama serves Ollama's API: POST /api/generate and POST /api/chat
// (NDJSON streams by default, durations in nanoseconds), GET /api/tags and
// GET /api/version.
package ollama

import (
	"net/http"
	"strings"
	"time"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/chat"
	"github.com/qwend/qwend/engine"
)

// Register adds the Ollama routes to s; version is the daemon's.
func Register(s *api.Server, version string) {
	s.Inference("POST /api/generate", engine.OperationCompletion, WriteError, generate)
	s.Inference("POST /api/chat", engine.OperationChat, WriteError, chatHandler)
	s.Inference("POST /api/embed", engine.OperationEmbeddings, WriteError, embed)
	s.Inference("POST /api/embeddings", engine.OperationEmbeddings, WriteError, embeddingsLegacy)
	s.NotFound("/api/", WriteError)
	modelRoutes(s)
	s.Handle("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"version": version})
	})
}

// Options are Ollama's sampling and length options.
type Options struct {
	Temperature   *float32     `json:"temperature"`
	TopK          *int         `json:"top_k"`
	TopP          *float32     `json:"top_p"`
	MinP          *float32     `json:"min_p"`
	NumPredict    *int         `json:"num_predict"`
	RepeatPenalty *float32     `json:"repeat_penalty"`
	RepeatLastN   *int         `json:"repeat_last_n"`
	Seed          *int64       `json:"seed"`
	Stop          api.StopList `json:"stop"`
	// FrequencyPenalty and PresencePenalty in [-2, 2].
	FrequencyPenalty *float32 `json:"frequency_penalty"`
	PresencePenalty  *float32 `json:"presence_penalty"`
	// NumCtx limits the request's context; above the slot's context, the
	// slot's applies (the model stays loaded with its own).
	NumCtx *int `json:"num_ctx"`
	// Refused by name when set to anything but their off value.
	Mirostat *int     `json:"mirostat"`
	TypicalP *float32 `json:"typical_p"`
	TFSZ     *float32 `json:"tfs_z"`
	// Unknown holds options qwend does not define (load-time ones such as
	// num_gpu or num_thread among them): ignored, and logged once.
	Unknown api.Unknown `json:",embed"`
}

// Common are the fields /api/generate and /api/chat share.
type Common struct {
	Model     string     `json:"model"`
	Stream    *bool      `json:"stream"`
	Options   *Options   `json:"options"`
	KeepAlive *KeepAlive `json:"keep_alive"`
	// Format constrains the answer: "json" or a JSON schema.
	Format RawJSON `json:"format"`

	// Template renders chat prompts: the served model's chat template
	// (set by the handler); nil: ChatML.
	Template *chat.Template `json:"-"`
	tools    *toolOutput    // how a chat answer is read for tool calls
	Unknown  api.Unknown    `json:",embed"` // keys Ollama's API does not define here: ignored, logged once
	Think    *bool          `json:"think"`  // refused when true: the served model does not think aloud
	// Logprobs asks for the output tokens' log probabilities, TopLogprobs
	// (0-20) for the likeliest tokens at each position (Ollama's fields;
	// see engine.TokenLogprob for what the figures are).
	Logprobs    bool `json:"logprobs"`
	TopLogprobs int  `json:"top_logprobs"`
}

// GenerateRequest is the body of POST /api/generate.
type GenerateRequest struct {
	Common
	Prompt string `json:"prompt"`
	Suffix string `json:"suffix"`
	System string `json:"system"`
	Raw    bool   `json:"raw"`
	// Refused when used: a text model has no image input, and qwend renders
	// the model's own template.
	Images       []string `json:"images"`
	TemplateText string   `json:"template"`
}

// Message is one turn of /api/chat.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// ToolCalls are an assistant turn's calls; ToolName is the function a
	// tool turn answers for.
	ToolCalls []ToolCall `json:"tool_calls"`
	ToolName  string     `json:"tool_name"`
	Images    []string   `json:"images"` // refused when used: a text model has no image input
}

// ChatRequest is the body of POST /api/chat.
type ChatRequest struct {
	Common
	Messages []Message `json:"messages"`
	Tools    []Tool    `json:"tools"`
}

// apply applies Ollama's defaults (temperature 0.8, top_k 40, top_p 0.9,
// repeat_penalty 1.1, streaming on) and validates, naming options by their
// path (options.top_p).
func (c *Common) apply(req *engine.Request) *api.Error {
	if c.Think != nil && *c.Think {
		return api.BadRequest("field \"think\": thinking is not supported by this model")
	}
	o := c.Options
	if o == nil {
		o = &Options{}
	}
	n, aerr := api.MaxTokens("options.num_predict", o.NumPredict)
	if aerr != nil {
		return aerr
	}
	if aerr := api.CheckStops(o.Stop); aerr != nil {
		aerr.Message = strings.Replace(aerr.Message, "field \"", "field \"options.", 1)
		return aerr
	}
	switch {
	case o.Mirostat != nil && *o.Mirostat != 0:
		return api.BadRequest("field \"options.mirostat\": mirostat sampling is not supported")
	case o.TypicalP != nil && *o.TypicalP != 1:
		return api.BadRequest("field \"options.typical_p\": typical sampling is not supported")
	case o.TFSZ != nil && *o.TFSZ != 1:
		return api.BadRequest("field \"options.tfs_z\": tail-free sampling is not supported")
	case o.NumCtx != nil && (*o.NumCtx < 1 || *o.NumCtx > api.MaxTokensLimit):
		return api.BadRequest("field \"options.num_ctx\": %d is not in [1, %d]", *o.NumCtx, api.MaxTokensLimit)
	}
	if o.NumCtx != nil {
		req.ContextLimit = *o.NumCtx
	}
	sp, hasSeed, aerr := api.Sampling{Temperature: o.Temperature, TopP: o.TopP, TopK: o.TopK, MinP: o.MinP,
		RepeatPenalty: o.RepeatPenalty, RepeatLastN: o.RepeatLastN, Seed: o.Seed,
		FrequencyPenalty: o.FrequencyPenalty, PresencePenalty: o.PresencePenalty}.Params(api.Defaults{Temperature: 0.8, TopP: 0.9, RepeatPenalty: 1.1})
	if aerr != nil {
		aerr.Message = strings.Replace(aerr.Message, "field \"", "field \"options.", 1)
		return aerr
	}
	req.MaxTokens, req.Sampling, req.HasSeed, req.Stop = n, sp, hasSeed, o.Stop
	switch {
	case c.TopLogprobs < 0 || c.TopLogprobs > engine.MaxTopLogprobs:
		return api.BadRequest("field \"top_logprobs\": %d is not between 0 and %d", c.TopLogprobs, engine.MaxTopLogprobs)
	case c.TopLogprobs > 0 && !c.Logprobs:
		return api.BadRequest("field \"top_logprobs\": set \"logprobs\": true with it")
	}
	req.TopLogprobs = c.TopLogprobs
	req.Stream = c.Stream == nil || *c.Stream
	return nil
}

// ignored logs the keys and options qwend does not define, once each.
func (c *Common) ignored(x *api.Exchange) {
	x.IgnoredKeys("", c.Unknown)
	if c.Options != nil {
		x.IgnoredKeys("options.", c.Options.Unknown)
	}
}

// GenerateToEngine maps a decoded /api/generate body to an engine request:
// a suffix makes a fill-in-the-middle prompt, raw sends the prompt as is,
// otherwise system and prompt are rendered as a chat.
func GenerateToEngine(in *GenerateRequest, id string, capture bool) (*engine.Request, *api.Error) {
	// the token ids come back as the final object's context
	req := &engine.Request{ID: id, Operation: engine.OperationCompletion, CaptureContent: capture, ReturnTokens: true}
	switch {
	case len(in.Images) > 0:
		return nil, api.BadRequest("field \"images\": image input is not supported by this model")
	case in.TemplateText != "":
		return nil, api.BadRequest("field \"template\": qwend renders the model's own chat template; a template override is not supported")
	case in.Prompt == "" && in.Suffix == "":
		return nil, api.BadRequest("field \"prompt\": empty")
	case in.Suffix != "":
		req.Segments = chat.FIM(in.Prompt, in.Suffix)
	case in.Raw:
		req.Prompt = in.Prompt
	default:
		var msgs []chat.Message
		if in.System != "" {
			msgs = append(msgs, chat.Message{Role: "system", Content: in.System})
		}
		tmpl := in.Template
		if tmpl == nil {
			tmpl = chat.ChatML
		}
		req.Segments, _ = tmpl.Render(chat.Conversation{Messages: append(msgs, chat.Message{Role: "user", Content: in.Prompt})})
	}
	var aerr *api.Error
	if req.Grammar, aerr = formatGrammar(in.Format); aerr != nil {
		return nil, aerr
	}
	if aerr := in.apply(req); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

// ChatToEngine maps a decoded /api/chat body to an engine request.
func ChatToEngine(in *ChatRequest, id string, capture bool) (*engine.Request, *api.Error) {
	conv := chat.Conversation{Messages: make([]chat.Message, len(in.Messages))}
	for i, m := range in.Messages {
		if len(m.Images) > 0 {
			return nil, api.BadRequest("field \"messages[%d].images\": image input is not supported by this model", i)
		}
		conv.Messages[i] = chat.Message{Role: m.Role, Content: m.Content, Name: m.ToolName}
		for _, c := range m.ToolCalls {
			conv.Messages[i].ToolCalls = append(conv.Messages[i].ToolCalls, chat.ToolCall{Name: c.Function.Name, Arguments: string(c.Function.Arguments)})
		}
	}
	in.tools = nil
	for _, t := range in.Tools {
		conv.Tools = append(conv.Tools, []byte(t.raw))
		in.tools = &toolOutput{}
	}
	tmpl := in.Template
	if tmpl == nil {
		tmpl = chat.ChatML
	}
	segs, err := tmpl.Render(conv)
	if err != nil {
		return nil, api.BadRequest("%s", err.Error())
	}
	req := &engine.Request{ID: id, Operation: engine.OperationChat, Segments: segs, CaptureContent: capture}
	var aerr *api.Error
	if req.Grammar, aerr = formatGrammar(in.Format); aerr != nil {
		return nil, aerr
	}
	if aerr := in.apply(req); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

func generate(x *api.Exchange) *api.Error {
	var in GenerateRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	in.Common.ignored(x)
	if in.Prompt == "" && in.Suffix == "" {
		return load(x, &in.Common, false)
	}
	var aerr *api.Error
	if in.Template, aerr = templateFor(x); aerr != nil {
		return aerr
	}
	req, aerr := GenerateToEngine(&in, x.ResponseID("gen-"), x.Server().CaptureContent())
	if aerr != nil {
		return aerr
	}
	return run(x, in.Model, req, false, nil, in.Logprobs)
}

func chatHandler(x *api.Exchange) *api.Error {
	var in ChatRequest
	if aerr := x.Decode(&in); aerr != nil {
		return aerr
	}
	in.Common.ignored(x)
	if len(in.Messages) == 0 {
		return load(x, &in.Common, true)
	}
	var aerr *api.Error
	if in.Template, aerr = templateFor(x); aerr != nil {
		return aerr
	}
	req, aerr := ChatToEngine(&in, x.ResponseID("chat-"), x.Server().CaptureContent())
	if aerr != nil {
		return aerr
	}
	return run(x, in.Model, req, true, in.tools, in.Logprobs)
}

// run runs req and writes Ollama's NDJSON stream or one object; with
// logprobs, each object carries the logprobs of the tokens whose text it
// completes.
func run(x *api.Exchange, model string, req *engine.Request, isChat bool, tools *toolOutput, logprobs bool) *api.Error {
	x.Rec.Request = req
	eng, aerr := x.Engine(model)
	if aerr != nil {
		return aerr
	}
	var lps []engine.TokenLogprob
	if logprobs {
		req.Logprobs = func(b []engine.TokenLogprob) { lps = append(lps, b...) }
	}
	name := x.Server().Model()
	piece := func(text string) map[string]any {
		m := map[string]any{"model": name, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "done": false}
		if isChat {
			m["message"] = map[string]string{"role": "assistant", "content": text}
		} else {
			m["response"] = text
		}
		if len(lps) > 0 {
			m["logprobs"] = api.TokenLogprobs(lps, true)
			lps = nil
		}
		return m
	}
	final := func(res engine.Result, text string) map[string]any {
		m := piece(text)
		m["done"] = true
		m["done_reason"] = res.FinishReason
		m["total_duration"] = res.Duration().Nanoseconds()
		m["load_duration"] = int64(0) // the model is loaded once, at start-up
		m["prompt_eval_count"] = res.PromptTokens
		m["prompt_eval_duration"] = max(0, res.TimeToFirstToken()-res.QueueWait()).Nanoseconds()
		m["eval_count"] = res.OutputTokens
		if !isChat {
			m["context"] = res.Tokens // the prompt's and the answer's token ids
		}
		if !res.FirstToken.IsZero() {
			m["eval_duration"] = res.Finished.Sub(res.FirstToken).Nanoseconds()
		} else {
			m["eval_duration"] = int64(0)
		}
		return m
	}
	if !req.Stream {
		var text strings.Builder
		res, err := x.Generate(eng, req, func(p string) { text.WriteString(p) })
		if err != nil {
			return api.FromEngine(err)
		}
		m := final(res, text.String())
		if isChat {
			m["message"] = tools.message(text.String())
		}
		api.WriteJSON(x.W, http.StatusOK, m)
		return nil
	}
	st := api.NewStreamer(x.W, "application/x-ndjson")
	req.Queued = st.Start // headers once admitted (NDJSON has no comment line for keep-alives)
	text := func(p string) { st.NDJSON(piece(p)) }
	call := func(c chat.ToolCall) {
		m := piece("")
		m["message"] = map[string]any{"role": "assistant", "content": "", "tool_calls": toolCallsJSON([]chat.ToolCall{c})}
		st.NDJSON(m)
	}
	res, err := x.Generate(eng, req, tools.stream(text, call))
	if err != nil {
		ae := api.FromEngine(err)
		if !st.Started() {
			return ae
		}
		st.NDJSON(errorBody(ae))
		return nil
	}
	tools.flush(text, call)
	st.NDJSON(final(res, ""))
	return nil
}
