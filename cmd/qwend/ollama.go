package main

import (
	"net/http"
	"strings"
	"time"

	"github.com/qwend/qwend/engine"
)

type ollamaOptions struct {
	Temperature   *float32 `json:"temperature"`
	TopK          *int     `json:"top_k"`
	TopP          *float32 `json:"top_p"`
	MinP          *float32 `json:"min_p"`
	NumPredict    *int     `json:"num_predict"`
	RepeatPenalty *float32 `json:"repeat_penalty"`
	RepeatLastN   *int     `json:"repeat_last_n"`
	Seed          *int64   `json:"seed"`
	Stop          stopList `json:"stop"`
}

type ollamaCommon struct {
	Model   string         `json:"model"`
	Stream  *bool          `json:"stream"`
	Options *ollamaOptions `json:"options"`
}

type ollamaGenerateRequest struct {
	ollamaCommon
	Prompt string `json:"prompt"`
	Suffix string `json:"suffix"`
	System string `json:"system"`
	Raw    bool   `json:"raw"`
}

type ollamaChatRequest struct {
	ollamaCommon
	Messages []chatMessage `json:"messages"`
}

// toEngine applies Ollama's defaults (temperature 0.8, top_k 40, top_p 0.9,
// repeat_penalty 1.1, streaming on) and validates.
func (c *ollamaCommon) toEngine(req *engine.Request) *apiError {
	o := c.Options
	if o == nil {
		o = &ollamaOptions{}
	}
	if o.TopP == nil {
		v := float32(0.9)
		o.TopP = &v
	}
	n, aerr := checkMaxTokens("options.num_predict", o.NumPredict)
	if aerr != nil {
		return aerr
	}
	if aerr := checkStops(o.Stop); aerr != nil {
		return aerr
	}
	sp, hasSeed, aerr := samplingInput{Temperature: o.Temperature, TopP: o.TopP, TopK: o.TopK, MinP: o.MinP,
		RepeatPenalty: o.RepeatPenalty, RepeatLastN: o.RepeatLastN, Seed: o.Seed}.params(0.8, 1.1)
	if aerr != nil {
		aerr.Message = strings.Replace(aerr.Message, "field \"", "field \"options.", 1)
		return aerr
	}
	req.MaxTokens, req.Sampling, req.HasSeed, req.Stop = n, sp, hasSeed, o.Stop
	req.Stream = c.Stream == nil || *c.Stream
	return nil
}

func (s *server) ollamaGenerate(w http.ResponseWriter, r *http.Request) {
	var in ollamaGenerateRequest
	if aerr := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	req := &engine.Request{ID: responseID("gen-", r), Operation: engine.OperationCompletion, CaptureContent: s.cfg.CaptureContent}
	switch {
	case in.Prompt == "" && in.Suffix == "":
		writeError(w, badRequest("field \"prompt\": empty"))
		return
	case in.Suffix != "":
		req.Segments = fimSegments(in.Prompt, in.Suffix)
	case in.Raw:
		req.Prompt = in.Prompt
	default:
		var msgs []chatMessage
		if in.System != "" {
			msgs = append(msgs, chatMessage{Role: "system", Content: chatContent(in.System)})
		}
		req.Segments, _ = renderChatML(append(msgs, chatMessage{Role: "user", Content: chatContent(in.Prompt)}))
	}
	if aerr := in.toEngine(req); aerr != nil {
		writeError(w, aerr)
		return
	}
	s.runOllama(w, r, in.Model, req, false)
}

func (s *server) ollamaChat(w http.ResponseWriter, r *http.Request) {
	var in ollamaChatRequest
	if aerr := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	req, aerr := s.chatRequest(r, "chat-", in.Messages)
	if aerr == nil {
		aerr = in.toEngine(req)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	s.runOllama(w, r, in.Model, req, true)
}

func (s *server) ollamaTags(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"models": []map[string]any{{
		"name": s.model.Name, "model": s.model.Name, "modified_at": s.created.UTC().Format(time.RFC3339),
	}}})
}

// runOllama runs req and writes Ollama's NDJSON stream or one object.
func (s *server) runOllama(w http.ResponseWriter, r *http.Request, model string, req *engine.Request, chat bool) {
	eng, aerr := s.engineFor(model)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	piece := func(text string) map[string]any {
		m := map[string]any{"model": s.model.Name, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "done": false}
		if chat {
			m["message"] = map[string]string{"role": "assistant", "content": text}
		} else {
			m["response"] = text
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
		if !res.FirstToken.IsZero() {
			m["eval_duration"] = res.Finished.Sub(res.FirstToken).Nanoseconds()
		} else {
			m["eval_duration"] = int64(0)
		}
		return m
	}
	if !req.Stream {
		var text strings.Builder
		res, err := eng.Generate(ctx, req, func(p string) { text.WriteString(p) })
		if err != nil {
			writeError(w, engineError(err))
			return
		}
		writeJSON(w, http.StatusOK, final(res, text.String()))
		return
	}
	st := newStreamer(w, "application/x-ndjson")
	res, err := eng.Generate(ctx, req, func(p string) { st.ndjson(piece(p)) })
	if err != nil {
		ae := engineError(err)
		if !st.started {
			writeError(w, ae)
			return
		}
		st.ndjson(errorJSON(ae))
		return
	}
	st.ndjson(final(res, ""))
}
