package ollama

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qwend/qwend/api"
)

// modelRoutes adds GET / and HEAD / (Ollama's liveness answer), GET
// /api/tags, POST /api/show and GET /api/ps, describing the one model
// qwend serves, in Ollama's shapes.
func modelRoutes(s *api.Server) {
	running := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte("Ollama is running"))
		}
	}
	s.Handle("GET /{$}", running)
	s.Handle("HEAD /{$}", running)
	s.Handle("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]any{"models": []map[string]any{tag(s)}})
	})
	s.Handle("GET /api/ps", func(w http.ResponseWriter, r *http.Request) {
		m := tag(s)
		delete(m, "modified_at")
		// always loaded: it expires when the daemon stops
		m["expires_at"] = time.Date(2318, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
		m["size_vram"] = int64(0)
		m["context_length"] = s.ContextLength()
		api.WriteJSON(w, http.StatusOK, map[string]any{"models": []map[string]any{m}})
	})
	s.Handle("POST /api/show", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Model   string      `json:"model"`
			Name    string      `json:"name"` // the older field
			Verbose bool        `json:"verbose"`
			Unknown api.Unknown `json:",embed"`
		}
		if e := api.DecodeBody(w, r, 64<<10, &in); e != nil {
			WriteError(w, e)
			return
		}
		name := in.Model
		if name == "" {
			name = in.Name
		}
		if name == "" {
			WriteError(w, api.BadRequest("field \"model\": required"))
			return
		}
		if !s.Serves(name) {
			WriteError(w, &api.Error{Status: http.StatusNotFound, Kind: api.KindInvalid, Message: "model '" + name + "' not found"})
			return
		}
		info := s.Info()
		capabilities := []string{"completion", "insert"}
		if info.Template == "" || strings.Contains(info.Template, "tools") { // ChatML, the fallback, renders tools
			capabilities = append(capabilities, "tools")
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{
			"license": "", "modelfile": "", "parameters": "", "template": info.Template,
			"details":      details(info),
			"model_info":   map[string]any{"general.architecture": info.Family, "general.parameter_count": info.Parameters, info.Family + ".context_length": s.ContextLength()},
			"capabilities": capabilities,
			"modified_at":  s.Created().UTC().Format(time.RFC3339Nano),
		})
	})
}

// tag is the served model as /api/tags lists it.
func tag(s *api.Server) map[string]any {
	info := s.Info()
	name := s.Model()
	if !strings.Contains(name, ":") {
		name += ":latest"
	}
	digest := ""
	if info.Digest != nil {
		digest = strings.TrimPrefix(info.Digest(), "sha256:")
	}
	return map[string]any{"name": name, "model": name, "modified_at": s.Created().UTC().Format(time.RFC3339Nano),
		"size": info.Size, "digest": digest, "details": details(info)}
}

func details(info api.ModelInfo) map[string]any {
	return map[string]any{"parent_model": "", "format": "gguf", "family": info.Family, "families": []string{info.Family},
		"parameter_size": parameterSize(info.Parameters), "quantization_level": info.Quantization}
}

// parameterSize writes a count as Ollama does: "1.5B", "494M".
func parameterSize(n uint64) string {
	switch {
	case n == 0:
		return ""
	case n >= 1e9:
		return trimZero(float64(n)/1e9) + "B"
	case n >= 1e6:
		return trimZero(float64(n)/1e6) + "M"
	}
	return trimZero(float64(n)/1e3) + "K"
}

func trimZero(v float64) string {
	return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 1, 64), "0"), ".")
}
