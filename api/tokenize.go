package api

import (
	"net/http"

	"github.com/qwend/qwend/engine"
)

// tokenizeRoutes adds POST /tokenize ({"content"} -> {"tokens"}) and POST
// /detokenize ({"tokens"} -> {"content"}), as llama-server has them, so a
// client can count tokens with the served model's own tokenizer. Content
// is tokenized as a prompt's user text is: control-token text stays text.
func (s *Server) tokenizeRoutes() {
	s.Handle("POST /tokenize", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Content *string `json:"content"`
			Unknown Unknown `json:",embed"`
		}
		if e := s.decodeUtility(w, r, &in); e != nil {
			WriteOpenAIError(w, e)
			return
		}
		if in.Content == nil {
			WriteOpenAIError(w, BadRequest("field \"content\": required"))
			return
		}
		eng, e := s.readyEngine()
		if e != nil {
			WriteOpenAIError(w, e)
			return
		}
		toks, err := eng.TokenizeText(r.Context(), *in.Content, MaxTokensLimit)
		if err != nil {
			WriteOpenAIError(w, FromEngine(err))
			return
		}
		if toks == nil {
			toks = []int{}
		}
		WriteJSON(w, http.StatusOK, map[string]any{"tokens": toks})
	})
	s.Handle("POST /detokenize", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Tokens  []int   `json:"tokens"`
			Unknown Unknown `json:",embed"`
		}
		if e := s.decodeUtility(w, r, &in); e != nil {
			WriteOpenAIError(w, e)
			return
		}
		eng, e := s.readyEngine()
		if e != nil {
			WriteOpenAIError(w, e)
			return
		}
		text, err := eng.Detokenize(in.Tokens)
		if err != nil {
			WriteOpenAIError(w, FromEngine(err))
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"content": text})
	})
}

// decodeUtility reads a small utility request body, authenticated like
// the API when keys are set.
func (s *Server) decodeUtility(w http.ResponseWriter, r *http.Request, v any) *Error {
	return DecodeBody(w, r, s.cfg.MaxBodyBytes, v)
}

// readyEngine is the engine once the model is loaded, else a 503.
func (s *Server) readyEngine() (*engine.Engine, *Error) {
	e := s.eng.Load()
	if e == nil || !s.ready.Load() {
		return nil, &Error{Status: http.StatusServiceUnavailable, Kind: KindUnavailable, Type: engine.ErrorTypeUnavailable, Code: "model_loading", Message: "model is loading; see /readyz"}
	}
	return e, nil
}
