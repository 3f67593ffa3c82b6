package ollama

import (
	"net/http"

	"github.com/qwend/qwend/api"
)

// WriteError writes e in Ollama's error shape, {"error":"<message>"}, with
// Ollama's status for a model that is not served (404) and Retry-After on
// the statuses a client should retry. Every error of an /api/ route is
// written so, whole or as the last line of a stream.
func WriteError(w http.ResponseWriter, e *api.Error) {
	api.SetRetryAfter(w, e)
	api.WriteJSON(w, status(e), errorBody(e))
}

func status(e *api.Error) int {
	if e.Code == api.CodeModelNotFound {
		return http.StatusNotFound
	}
	return e.Status
}

// errorBody is Ollama's error object; a budget refusal keeps its figures
// beside the message.
func errorBody(e *api.Error) map[string]any {
	b := map[string]any{"error": e.Message}
	if e.Budget != nil {
		b["budget"] = e.Budget
	}
	return b
}
