package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qwend/qwend/synth"
)

// agentDir is the Node harness of the agent conformance test; its
// node_modules comes from npm ci there (scripts/deps.sh runs it).
const agentDir = "testdata/agent"

// A coding agent's loop, scripted with the official openai client (pinned
// in testdata/agent/package-lock.json), against the daemon with its
// default context on the default synthetic model, through chat completions and
// the Responses API: a long system prompt, a user turn in text parts, ten
// tools, a forced call with schema-valid arguments, the tool results and
// a final answer, every turn streamed with its headers before its first
// token (the first turns while every slot is busy). Each turn ends in the
// service log like any request.
func TestAgentConformance(t *testing.T) {
	v, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Skip("node is not installed: the agent conformance test needs Node 20 or later")
	}
	if major, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(strings.TrimSpace(string(v)), ".")[0], "v")); major < 20 {
		t.Skipf("node %s: the openai client needs Node 20 or later", strings.TrimSpace(string(v)))
	}
	if _, err := os.Stat(filepath.Join(agentDir, "node_modules", "openai", "package.json")); err != nil {
		t.Skip("cmd/qwend/testdata/agent/node_modules is missing: run npm ci there (scripts/deps.sh does)")
	}
	// the default flags, but for the context that startServer shrinks
	defaults, err := parseServeConfig([]string{"--model", modelPath}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// the default model, as make run writes it: Qwen2.5's vocabulary and
	// Qwen2.5-Coder-Instruct's template where scripts/deps.sh installed the
	// tokenizer, else the small vocabulary and the ChatML fallback
	model := modelPath
	if tp := synth.FindTokenizer(); tp != "" {
		tok, err := synth.LoadTokenizer(tp)
		if err != nil {
			t.Fatal(err)
		}
		model = filepath.Join(t.TempDir(), "tiny-qwen.gguf")
		if err := synth.WriteTinyQwen(context.Background(), model, 1, tok); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("Qwen2.5's tokenizer.json is not installed: the model has the small vocabulary")
	}
	ts := startServer(t, nil, "--model", model, "--ctx-size", "0")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "agent.mjs", ts.URL+"/v1", strconv.Itoa(defaults.Parallel))
	cmd.Dir = agentDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node agent.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !strings.Contains(string(out), " passed, 0 failed") {
		t.Errorf("the script did not run all its steps:\n%s", out)
	}

	// each turn ended in the one place: a service log line without error
	ok := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(ts.Service.String()), "\n") {
		var l struct {
			Endpoint   string `json:"endpoint"`
			HTTPStatus int    `json:"http_status"`
			ErrorType  string `json:"error_type"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("service log line %q: %v", line, err)
		}
		if l.HTTPStatus == 200 && l.ErrorType == "" {
			ok[l.Endpoint]++
		}
	}
	if ok["POST /v1/chat/completions"] < 2 || ok["POST /v1/responses"] < 2 {
		t.Errorf("successful requests in the service log: %v, want two turns of each API", ok)
	}
}
