package main

import (
	"io"
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
