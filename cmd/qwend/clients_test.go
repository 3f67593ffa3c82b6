package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientsDir is the Node harness of the client conformance test; its
// node_modules comes from npm ci there (scripts/deps.sh runs it).
const clientsDir = "testdata/clients"

// The official openai and ollama clients (pinned in
// testdata/clients/package-lock.json) against the daemon on the synthetic
// model, asserting what each library shows its user: the model listings,
// chat and generate plain and streamed, tools, structured output,
// embeddings, logprobs, the Ollama load call, an abort mid-stream with each
// client, and the errors a user meets (400, 404, top_logprobs without
// logprobs, 413, a prompt over the
// context) as the client's error class with a message naming the problem.
func TestClientConformance(t *testing.T) {
	v, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Skip("node is not installed: the client conformance test needs Node 20 or later")
	}
	if major, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(strings.TrimSpace(string(v)), ".")[0], "v")); major < 20 {
		t.Skipf("node %s: the openai client needs Node 20 or later", strings.TrimSpace(string(v)))
	}
	for _, pkg := range []string{"openai", "ollama", "ajv"} {
		if _, err := os.Stat(filepath.Join(clientsDir, "node_modules", pkg, "package.json")); err != nil {
			t.Skip("cmd/qwend/testdata/clients/node_modules is missing: run npm ci there (scripts/deps.sh does)")
		}
	}
	const maxBody, ctxSize = 65536, 2048
	ts := startServer(t, nil, "--max-body-bytes", strconv.Itoa(maxBody), "--ctx-size", strconv.Itoa(ctxSize))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "clients.mjs", ts.URL, strconv.Itoa(maxBody), strconv.Itoa(ctxSize))
	cmd.Dir = clientsDir
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("node clients.mjs: %v", err)
	}
	if !strings.Contains(string(out), " passed, 0 failed") {
		t.Fatalf("the script did not run all its steps")
	}

	// still serving after the aborts
	resp, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after the script: %d", resp.StatusCode)
	}

	// each abort ended its request as cancelled in the service log (Stop
	// waits for the requests in flight, so every line is written)
	ts.Stop()
	cancelled := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(ts.Service.String()), "\n") {
		var l struct {
			Endpoint  string `json:"endpoint"`
			ErrorType string `json:"error_type"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("service log line %q: %v", line, err)
		}
		if l.ErrorType == "cancelled" {
			cancelled[l.Endpoint]++
		}
	}
	if cancelled["POST /v1/chat/completions"] != 2 || cancelled["POST /api/generate"] != 1 {
		t.Errorf("cancelled requests in the service log: %v, want two chat completions and one generate", cancelled)
	}
}
