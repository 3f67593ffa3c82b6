package logging

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestInferenceLineGolden(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	ctx = WithRequestID(ctx, "0123456789abcdef")
	gpu := map[string]any{"devices": []map[string]any{{"index": 0, "nvml_unavailable": true, "memory_total_bytes": 0}}}
	for _, tc := range []struct {
		name string
		in   Inference
	}{
		{"success", Inference{
			Time: time.Date(2026, 11, 23, 10, 4, 5, 123456000, time.FixedZone("CET", 3600)), Model: "qwen2.5-coder-1.5b", Operation: "chat",
			Status: "success", Latency: 1234567 * time.Microsecond, TokensGenerated: 42, TokensPerSecond: 34.0200003,
			PromptTokens: 17, CachedTokens: 8, MaxNewTokens: 64, Temperature: 0.2, FinishReason: "length", GPU: gpu}},
		{"error", Inference{
			Time: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Model: "qwen2.5-coder-1.5b", Operation: "text_completion",
			Status: "error", ErrorType: "context_window_exceeded", PromptTokens: 9000, MaxNewTokens: 100, GPU: gpu}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			NewServiceLog(&buf).Inference(ctx, tc.in)
			golden := filepath.Join("testdata", "inference_"+tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("line:\n%s\nwant:\n%s", buf.Bytes(), want)
			}
		})
	}
}
