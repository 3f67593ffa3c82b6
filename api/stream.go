package api

import (
	"encoding/json"
	"net/http"
	"time"
)

// Streamer writes a streamed response: status and headers go out with the
// first event, so errors before it are still proper HTTP errors.
type Streamer struct {
	w       http.ResponseWriter
	flusher http.Flusher
	started bool
	ctype   string
}

// NewStreamer streams to w with the content type ctype.
func NewStreamer(w http.ResponseWriter, ctype string) *Streamer {
	f, _ := w.(http.Flusher)
	return &Streamer{w: w, flusher: f, ctype: ctype}
}

// Started reports whether the status line has gone out.
func (st *Streamer) Started() bool { return st.started }

// Start sends the status line and headers now, if they have not gone out
// (a stream starts once its request is admitted, not at its first token,
// so that clients see it is alive); later errors travel in the stream.
func (st *Streamer) Start() {
	st.start()
	if st.flusher != nil {
		st.flusher.Flush()
	}
}

func (st *Streamer) start() {
	if st.started {
		return
	}
	st.started = true
	h := st.w.Header()
	h.Set("Content-Type", st.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
}

// Write sends b and flushes it.
func (st *Streamer) Write(b []byte) {
	st.start()
	_, _ = st.w.Write(b)
	if st.flusher != nil {
		st.flusher.Flush()
	}
}

// KeepAliveInterval is how often a stream that has sent nothing yet (its
// request waits for a slot or prefills) gets a keep-alive: an SSE comment
// line on OpenAI streams.
const KeepAliveInterval = 10 * time.Second

// SSEComment is the keep-alive line of a server-sent event stream.
var SSEComment = []byte(": keep-alive\n\n")

// SSE writes one server-sent event with v as JSON.
func (st *Streamer) SSE(v any) {
	b, _ := json.Marshal(v)
	st.Write(append(append([]byte("data: "), b...), '\n', '\n'))
}

// NDJSON writes v as one line of JSON.
func (st *Streamer) NDJSON(v any) {
	b, _ := json.Marshal(v)
	st.Write(append(b, '\n'))
}
