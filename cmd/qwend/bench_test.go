package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// go test -run xxx -bench Stream -benchmem ./cmd/qwend
// One streamed 32-token completion per op through the whole daemon (HTTP,
// engine, telemetry), on the tiny model: the per-request and per-token
// overhead around the model, with telemetry off and on.
//
// The ledger=sqlite case adds the usage ledger (a SQLite file) and prices:
// its ratio to otel=on is the ledger's cost per request.
func BenchmarkStream(b *testing.B) {
	for _, c := range []struct{ name, otel, ledger string }{
		{"otel=off", "off", "off"}, {"otel=on", "on", "off"}, {"otel=on,ledger=sqlite", "on", "sqlite"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			args := []string{"--otel", c.otel, "--shutdown-timeout", "1s"}
			if c.ledger == "sqlite" {
				args = append(args, "--ledger", filepath.Join(b.TempDir(), "ledger.db"), "--prices", writePrices(b))
			}
			ts := startServer(b, nil, args...)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				body := fmt.Sprintf(`{"prompt":"bench %d","max_tokens":32,"temperature":0,"stream":true}`, i)
				resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(32*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
