package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		mention string // "" means valid
	}{
		{"defaults", nil, nil, ""},
		{"env sets a value", nil, map[string]string{"QWEND_PARALLEL": "8"}, ""},
		{"bad parallel flag", []string{"--parallel", "0"}, nil, "--parallel (QWEND_PARALLEL)"},
		{"bad env value names the variable", nil, map[string]string{"QWEND_CTX_SIZE": "lots"}, "QWEND_CTX_SIZE"},
		{"bad flash attention", []string{"--flash-attention", "maybe"}, nil, "--flash-attention"},
		{"bad kv type", []string{"--kv-cache-type", "q2"}, nil, "--kv-cache-type"},
		{"bad otel", []string{"--otel", "yes"}, nil, "--otel"},
		{"bad addr", []string{"--addr", "8080"}, nil, "--addr"},
		{"bad timeout", []string{"--request-timeout", "-1s"}, nil, "--request-timeout"},
		{"flag beats env", []string{"--threads", "3"}, map[string]string{"QWEND_THREADS": "0"}, ""},
		{"stray argument", []string{"model.gguf"}, nil, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServeConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.mention == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if tc.env["QWEND_PARALLEL"] == "8" && c.Parallel != 8 {
					t.Errorf("parallel %d, want 8 from the environment", c.Parallel)
				}
				if tc.env["QWEND_THREADS"] == "0" && c.Threads != 3 {
					t.Errorf("threads %d, want the flag's 3", c.Threads)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %v, want one naming %q", err, tc.mention)
			}
		})
	}
}

func TestOllamaNameResolution(t *testing.T) {
	store := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := writeFile(store+"/"+path, content); err != nil {
			t.Fatal(err)
		}
	}
	write("manifests/registry.ollama.ai/library/qwen2.5-coder/1.5b",
		`{"layers":[{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:aaa"},{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:bbb"}]}`)
	write("blobs/sha256-bbb", "GGUF")
	got, err := ollamaBlob(store, "qwen2.5-coder:1.5b")
	if err != nil || !strings.HasSuffix(got, "blobs/sha256-bbb") {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"qwen2.5-coder:7b", "../../etc:passwd", "a/b/c/d"} {
		if _, err := ollamaBlob(store, bad); err == nil {
			t.Errorf("%q resolved", bad)
		}
	}
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
