package quality

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qwend/qwend/usage"
)

// openStore opens (creating) the SQLite ledger dsn, closed when the test
// ends unless closed before.
func openStore(t *testing.T, dsn string) usage.Store {
	t.Helper()
	s, err := usage.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("usage.Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func noEnv(string) string { return "" }

// feedNow gives m a baseline of 200 short answers over the 5 hours before
// its recent window and 100 long ones in the last half hour, by the wall
// clock (StartDrift's monitors read it).
func feedNow(m *DriftMonitor) {
	clock := &fakeClock{t: time.Now().Add(-time.Hour)}
	feed(m, clock, 5*time.Hour, 200, func(int) DriftSample { return answered(10, 300, 100*time.Millisecond) })
	clock.Add(time.Hour)
	feed(m, clock, 30*time.Minute, 100, func(int) DriftSample { return answered(100, 300, 100*time.Millisecond) })
}

var testDriftFlags = DriftFlags{Window: time.Hour, BaselineWindow: 24 * time.Hour, MinRequests: 50}

// The history survives a restart through the ledger database: a monitor's
// state saved in a SQLite ledger and loaded by a new monitor, after the
// ledger is reopened, gives the same windows.
func TestDriftStateInLedger(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	m := newTestMonitor(clock)
	clock.Add(-time.Hour)
	feed(m, clock, 5*time.Hour, 200, func(int) DriftSample { return answered(10, 300, 100*time.Millisecond) })
	clock.Add(time.Hour)
	feed(m, clock, 30*time.Minute, 100, func(i int) DriftSample {
		s := answered(100, 300, 100*time.Millisecond)
		s.Error = i%10 == 0
		return s
	})
	before := m.Report()

	dsn := filepath.Join(t.TempDir(), "ledger.db")
	store := openStore(t, dsn)
	b, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SaveDriftState(ctx, "qwen3-0.6b", b); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	saved, found, err := openStore(t, dsn).LoadDriftState(ctx, "qwen3-0.6b")
	if err != nil || !found {
		t.Fatalf("LoadDriftState: found %v, %v", found, err)
	}
	restarted := newTestMonitor(clock)
	if err := restarted.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	after := restarted.Report()
	if after.BaselineRequests != 200 || after.RecentRequests != 100 || after.Status != before.Status ||
		after.PSI[SignalOutputTokens] != before.PSI[SignalOutputTokens] || after.Share[SignalError] != before.Share[SignalError] {
		t.Errorf("after a restart %+v, before %+v", after, before)
	}
	for _, recent := range []bool{false, true} {
		w0, w1 := m.Window(recent), restarted.Window(recent)
		if w0.Requests != w1.Requests || w0.Answered != w1.Answered || w0.Errors != w1.Errors {
			t.Errorf("window (recent %v): %d requests, %d answered, %d errors after the restart; %d, %d, %d before",
				recent, w1.Requests, w1.Answered, w1.Errors, w0.Requests, w0.Answered, w0.Errors)
		}
	}
	if err := NewDriftMonitor(DriftConfig{Recent: time.Minute, Now: clock.Now}).LoadState(saved); err == nil ||
		!strings.Contains(err.Error(), "resolution") {
		t.Errorf("another resolution: %v", err)
	}
	if err := restarted.LoadState([]byte("{")); err == nil {
		t.Error("LoadState of broken JSON succeeded")
	}
}

// Without --drift-state, StartDrift keeps the history in the open ledger:
// saved when stopped, loaded by the next StartDrift on the same database,
// under the model's name.
func TestStartDriftLedger(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "ledger.db")
	store := openStore(t, dsn)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	mon, stop, err := StartDrift(testDriftFlags, dsn, store, "qwen3-0.6b", log, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"history":"ledger database"`) {
		t.Errorf("start log %s does not name the ledger database", logs.String())
	}
	feedNow(mon)
	before := mon.Report()
	stop()
	if before.BaselineRequests != 200 || before.RecentRequests != 100 || before.Status != "act" {
		t.Fatalf("fed monitor %+v", before)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(files) != 0 {
		t.Errorf("history files beside the ledger: %v", files)
	}

	store = openStore(t, dsn)
	restarted, stop2, err := StartDrift(testDriftFlags, dsn, store, "qwen3-0.6b", log, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	after := restarted.Report()
	if after.BaselineRequests != before.BaselineRequests || after.RecentRequests != before.RecentRequests ||
		after.Status != before.Status || after.PSI[SignalOutputTokens] != before.PSI[SignalOutputTokens] {
		t.Errorf("after a restart %+v, before %+v", after, before)
	}
	other, stop3, err := StartDrift(testDriftFlags, dsn, store, "qwen3-8b", log, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	stop3()
	if r := other.Report(); r.BaselineRequests != 0 || r.RecentRequests != 0 {
		t.Errorf("another model's monitor loaded %d + %d requests", r.BaselineRequests, r.RecentRequests)
	}
}

// --drift-state FILE wins over the ledger, --drift-state off keeps
// nothing, and without a ledger nothing is kept.
func TestStartDriftHistoryChoice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "ledger.db")
	store := openStore(t, dsn)
	file := filepath.Join(dir, "drift.json")
	for _, c := range []struct {
		state   string
		store   usage.Store
		history string
	}{
		{file, store, file}, {"off", store, "none"}, {"", nil, "none"},
	} {
		var logs bytes.Buffer
		d := testDriftFlags
		d.State = c.state
		mon, stop, err := StartDrift(d, dsn, c.store, "qwen3-0.6b", slog.New(slog.NewJSONHandler(&logs, nil)), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		feedNow(mon)
		stop()
		if !strings.Contains(logs.String(), `"history":"`+c.history+`"`) {
			t.Errorf("--drift-state %q: start log %s; want history %s", c.state, logs.String(), c.history)
		}
		if _, found, err := store.LoadDriftState(ctx, "qwen3-0.6b"); err != nil || found {
			t.Errorf("--drift-state %q: the ledger holds a history (%v, %v)", c.state, found, err)
		}
	}
	restarted := NewDriftMonitor(DriftConfig{Recent: time.Hour})
	if err := restarted.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	if r := restarted.Report(); r.RecentRequests != 100 {
		t.Errorf("--drift-state FILE kept %d recent requests, want 100", r.RecentRequests)
	}
}

// A history file left beside a SQLite ledger is read when the database
// holds none, and saved in the database from then on.
func TestStartDriftLegacyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "ledger.db")
	old := NewDriftMonitor(DriftConfig{Recent: time.Hour})
	feedNow(old)
	if err := old.SaveFile(dsn + ".drift.json"); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, dsn)
	mon, stop, err := StartDrift(testDriftFlags, dsn, store, "qwen3-0.6b", slog.New(slog.NewTextHandler(io.Discard, nil)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if r := mon.Report(); r.BaselineRequests != 200 || r.RecentRequests != 100 {
		t.Errorf("from the file beside the ledger: %d + %d requests, want 200 + 100", r.BaselineRequests, r.RecentRequests)
	}
	stop()
	if _, found, err := store.LoadDriftState(ctx, "qwen3-0.6b"); err != nil || !found {
		t.Errorf("not saved in the ledger: found %v, %v", found, err)
	}
}

// qwend drift snapshot --ledger pins a window of the history a daemon kept
// in its ledger; the flags are checked and named.
func TestDriftSnapshotLedger(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "ledger.db")
	store := openStore(t, dsn)
	mon, stop, err := StartDrift(testDriftFlags, dsn, store, "qwen3-0.6b", slog.New(slog.NewTextHandler(io.Discard, nil)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	feedNow(mon)
	stop()

	out := filepath.Join(dir, "baseline.json")
	var stdout bytes.Buffer
	if err := DriftCommand([]string{"snapshot", "--ledger", dsn, "--model", "qwen3-0.6b", "--window", "recent", "--out", out},
		&stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "100 requests (100 answered)") {
		t.Errorf("output %q", stdout.String())
	}
	w, err := ReadWindowFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if w.Requests != 100 || w.OutputTokens[tokenBin(100)] != 100 {
		t.Errorf("pinned window: %d requests, output token bins %v; want the 100 recent long answers", w.Requests, w.OutputTokens)
	}
	stdout.Reset()
	if err := DriftCommand([]string{"snapshot", "--ledger", dsn, "--model", "qwen3-0.6b", "--out", out}, &stdout, io.Discard); err != nil ||
		!strings.Contains(stdout.String(), "200 requests (200 answered)") {
		t.Errorf("the baseline window: %v %q", err, stdout.String())
	}

	missing := filepath.Join(dir, "none", "ledger.db")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--out", out}, []string{"--state", "--ledger"}},
		{[]string{"--state", dsn + ".json", "--ledger", dsn, "--model", "m", "--out", out}, []string{"--state", "--ledger"}},
		{[]string{"--ledger", dsn, "--out", out}, []string{"--ledger", "--model"}},
		{[]string{"--state", dsn + ".json", "--model", "m", "--out", out}, []string{"--ledger", "--model"}},
		{[]string{"--ledger", dsn, "--model", "qwen3-0.6b"}, []string{"--out"}},
		{[]string{"--ledger", dsn, "--model", "qwen3-0.6b", "--out", out, "--window", "last"}, []string{"--window"}},
		{[]string{"--ledger", dsn, "--model", "qwen3-8b", "--out", out}, []string{"--ledger", "--model", "qwen3-8b"}},
		{[]string{"--ledger", missing, "--model", "qwen3-0.6b", "--out", out}, []string{"--ledger"}},
		{[]string{"--ledger", dsn, "--model", "qwen3-0.6b", "--out", out, "--drift-window", "2h"}, []string{"--ledger", "resolution"}},
	} {
		err := DriftCommand(append([]string{"snapshot"}, c.args...), io.Discard, io.Discard)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %v, want one naming %s", c.args, err, w)
			}
		}
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("a snapshot of a missing ledger created %s (%v)", filepath.Dir(missing), err)
	}
}
