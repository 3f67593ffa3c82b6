package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwend/qwend/quality"
)

// The daemon's drift monitor sees every request: /metrics JSON has the
// drift block, the history is saved at shutdown, a snapshot of it pins a
// baseline that the next daemon compares with.
func TestServeDrift(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "drift.json")
	ts := startServer(t, nil, "--drift-state", state, "--drift-min-requests", "2")
	for range 3 {
		if resp, b := post(t, ts.URL+"/v1/completions", `{"prompt":"def f(x):","max_tokens":4,"temperature":0}`); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	post(t, ts.URL+"/v1/completions", `{"prompt":"x","max_tokens":0}`) // a 400: an error in the recent window
	var mj struct {
		Drift *quality.DriftReport `json:"drift"`
	}
	getJSON(t, ts.URL+"/metrics", &mj)
	if mj.Drift == nil || mj.Drift.RecentRequests != 4 || mj.Drift.RecentWindow != "1h0m0s" || mj.Drift.BaselineWindow != "24h0m0s" ||
		mj.Drift.Status != "insufficient_data" {
		t.Fatalf("drift block %+v", mj.Drift)
	}
	ts.Stop()
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no history saved at shutdown: %v", err)
	}

	pinned := filepath.Join(dir, "baseline.json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"drift", "snapshot", "--state", state, "--window", "recent", "--out", pinned},
		func(string) string { return "" }, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "4 requests (3 answered)") {
		t.Fatalf("snapshot: %v %s", err, out.String())
	}
	ts = startServer(t, nil, "--drift-state", state, "--drift-baseline", pinned, "--drift-min-requests", "2")
	getJSON(t, ts.URL+"/metrics", &mj)
	// the history came back (4 recent requests), compared with the pin,
	// which holds the same requests: nothing drifted
	if mj.Drift.BaselineWindow != "pinned" || mj.Drift.BaselineRequests != 4 || mj.Drift.RecentRequests != 4 || mj.Drift.Status != "ok" {
		t.Errorf("against the pinned baseline %+v", mj.Drift)
	}
}

func TestDriftFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--drift-window", "10s"},
		{"--drift-window", "2h", "--drift-baseline-window", "1h"},
		{"--drift-min-requests", "0"},
	} {
		if _, err := parseServeConfig(args, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "--drift-") {
			t.Errorf("%v: %v", args, err)
		}
	}
	c, err := parseServeConfig(nil, func(k string) string { return map[string]string{"QWEND_DRIFT_WINDOW": "30m"}[k] }, io.Discard)
	if err != nil || c.Drift.Window.Minutes() != 30 {
		t.Errorf("QWEND_DRIFT_WINDOW: %v %v", c.Drift.Window, err)
	}
	for _, c := range []struct {
		state      string
		ledgerOpen bool
		file       string
		inLedger   bool
	}{
		{"", true, "", true}, {"", false, "", false}, {"off", true, "", false}, {"/d/drift.json", true, "/d/drift.json", false},
	} {
		d := quality.DriftFlags{State: c.state}
		if file, inLedger := d.History(c.ledgerOpen); file != c.file || inLedger != c.inLedger {
			t.Errorf("--drift-state %q, ledger open %v: file %q, in the ledger %v; want %q, %v", c.state, c.ledgerOpen, file, inLedger, c.file, c.inLedger)
		}
	}
}
