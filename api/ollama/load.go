package ollama

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qwend/qwend/api"
)

// KeepAlive is Ollama's keep_alive: how long the model stays loaded after
// the request. qwend accepts every form Ollama does (a number of seconds,
// a duration string such as "5m", negative for ever, 0 to unload) and a
// string of seconds such as "-1"; its one model stays loaded whatever is
// asked (see the README).
type KeepAlive struct {
	time.Duration
}

// Forever is the keep_alive of a negative value.
const Forever = time.Duration(math.MaxInt64)

// UnmarshalJSON accepts a number of seconds or a duration string; null is
// absent (the field's pointer stays nil).
func (k *KeepAlive) UnmarshalJSON(b []byte) error {
	bad := &api.FieldError{Field: "keep_alive", Msg: `want a number of seconds or a duration such as "5m"`}
	var secs float64
	if err := api.Unmarshal(b, &secs); err != nil {
		var s string
		if err := api.Unmarshal(b, &s); err != nil {
			return bad
		}
		s = strings.TrimSpace(s)
		if d, err := time.ParseDuration(s); err == nil {
			k.Duration = d
			if d < 0 {
				k.Duration = Forever
			}
			return nil
		}
		if secs, err = strconv.ParseFloat(s, 64); err != nil || math.IsNaN(secs) {
			return bad
		}
	}
	switch {
	case secs < 0:
		k.Duration = Forever
	case secs*float64(time.Second) >= float64(math.MaxInt64):
		k.Duration = Forever
	default:
		k.Duration = time.Duration(secs * float64(time.Second))
	}
	return nil
}

// load answers Ollama's load and unload calls: /api/generate without a
// prompt, /api/chat without messages. The one model is loaded from start
// to shutdown, so both are acknowledged at once, as Ollama answers them:
// done_reason "unload" when keep_alive is 0, else "load". The model must
// be the one served.
func load(x *api.Exchange, c *Common, isChat bool) *api.Error {
	if c.Model == "" {
		return api.BadRequest("field \"model\": required")
	}
	if _, aerr := x.Engine(c.Model); aerr != nil {
		return aerr
	}
	reason := "load"
	if c.KeepAlive != nil && c.KeepAlive.Duration == 0 {
		reason = "unload"
	}
	m := map[string]any{"model": x.Server().Model(), "created_at": time.Now().UTC().Format(time.RFC3339Nano),
		"done": true, "done_reason": reason}
	if isChat {
		m["message"] = map[string]string{"role": "assistant", "content": ""}
	} else {
		m["response"] = ""
	}
	api.WriteJSON(x.W, http.StatusOK, m)
	return nil
}
