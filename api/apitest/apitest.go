// Package apitest runs the API against the real engine on the tiny
// synthetic model, for the protocol packages' handler tests.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/synth"
)

// Server is an API server over a real engine, with every record kept.
type Server struct {
	*httptest.Server
	API *api.Server

	mu      sync.Mutex
	records []api.Record
}

// Record keeps rec (api.Recorder).
func (s *Server) Record(_ context.Context, rec *api.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := *rec
	s.records = append(s.records, r)
}

// Records returns the records so far.
func (s *Server) Records() []api.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]api.Record(nil), s.records...)
}

// Options shape the test server.
type Options struct {
	ContextPerSlot int   // default 512
	Parallel       int   // default 2
	QueueLength    int   // default 4
	BatchSize      int   // prompt tokens per slot per step; default the engine's
	MaxBodyBytes   int64 // default 1 MiB
	WriteTimeout   time.Duration
	RequestTimeout time.Duration // default the server's
	// SmallBuffers makes the server's socket send buffers small, so that a
	// client that stops reading blocks the server's writes quickly.
	SmallBuffers bool
}

// New writes the tiny model, loads it, registers the routes with register
// and serves them; everything stops when the test ends.
func New(t testing.TB, o Options, register func(*api.Server)) *Server {
	t.Helper()
	if o.ContextPerSlot == 0 {
		o.ContextPerSlot = 512
	}
	if o.Parallel == 0 {
		o.Parallel = 2
	}
	if o.QueueLength == 0 {
		o.QueueLength = 4
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := synth.WriteTiny(context.Background(), path, 1); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), engine.Config{ModelPath: path, ModelName: "tiny", Parallel: o.Parallel,
		ContextPerSlot: o.ContextPerSlot, Threads: 1, QueueLength: o.QueueLength, BatchSize: o.BatchSize})
	if err != nil {
		t.Fatal(err)
	}
	ts := &Server{}
	ts.API = api.New(api.Config{Model: "tiny", MaxBodyBytes: o.MaxBodyBytes, Recorder: ts, WriteTimeout: o.WriteTimeout,
		ContextLength: o.ContextPerSlot,
		Info: api.ModelInfo{Family: "qwen2", Parameters: 1_540_000_000, Quantization: "F32", Size: 1234, Template: "{{ tools }}",
			Digest: func() string { return "sha256:abc" }}, RequestTimeout: o.RequestTimeout,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	register(ts.API)
	ts.API.SetEngine(eng)
	ts.Server = httptest.NewUnstartedServer(ts.API)
	if o.SmallBuffers {
		ts.Server.Listener = smallBuffers{ts.Server.Listener}
	}
	ts.Server.Start()
	t.Cleanup(func() {
		ts.Server.Close()
		eng.Close()
	})
	return ts
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// Post sends body as JSON and returns the response and its whole body.
func (s *Server) Post(t testing.TB, path, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
