package quality

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qwend/qwend/usage"
)

// DriftFlags are qwend serve's drift detection settings (cmd/qwend
// registers them with its other flags).
type DriftFlags struct {
	Window         time.Duration // the recent window
	BaselineWindow time.Duration // the rolling baseline before it
	Baseline       string        // a pinned baseline (qwend drift snapshot); "": the rolling window
	// State is where the history is kept across restarts: a file; "off":
	// nowhere; "": the ledger database when one is open, else nowhere.
	State       string
	MinRequests int
}

// Register adds the flags to fs.
func (d *DriftFlags) Register(fs *flag.FlagSet) {
	fs.DurationVar(&d.Window, "drift-window", time.Hour, "drift detection: the recent window compared with the baseline")
	fs.DurationVar(&d.BaselineWindow, "drift-baseline-window", 24*time.Hour, "drift detection: the rolling baseline window, before the recent one")
	fs.StringVar(&d.Baseline, "drift-baseline", "", "drift detection: a pinned baseline file (qwend drift snapshot) instead of the rolling window")
	fs.StringVar(&d.State, "drift-state", "", "drift detection: a file for the history kept across restarts (default: the ledger database, none with --ledger off; off: none)")
	fs.IntVar(&d.MinRequests, "drift-min-requests", 50, "drift detection: answered requests each window needs before figures are given")
}

// Check reports what is wrong with the settings, naming the flags and, by
// env, their variables.
func (d *DriftFlags) Check(env func(flag string) string) error {
	var errs []error
	if d.Window < time.Minute {
		errs = append(errs, fmt.Errorf("--drift-window (%s): %s is under a minute", env("drift-window"), d.Window))
	}
	if d.BaselineWindow < d.Window {
		errs = append(errs, fmt.Errorf("--drift-baseline-window (%s): %s is shorter than --drift-window", env("drift-baseline-window"), d.BaselineWindow))
	}
	if d.MinRequests < 1 {
		errs = append(errs, fmt.Errorf("--drift-min-requests (%s): %d is below 1", env("drift-min-requests"), d.MinRequests))
	}
	return errors.Join(errs...)
}

// History says where the history is kept: in file when --drift-state
// names one; else in the ledger database (inLedger) when ledgerOpen (a
// ledger is open: --ledger is not off); nowhere with --drift-state off or
// without a ledger.
func (d *DriftFlags) History(ledgerOpen bool) (file string, inLedger bool) {
	switch {
	case d.State == "off":
		return "", false
	case d.State != "":
		return d.State, false
	}
	return "", ledgerOpen
}

// legacyStatePath is the file that held the history beside a SQLite
// ledger (ledger is --ledger: "" is the default SQLite file) before the
// ledger database held it; "" for a PostgreSQL ledger or none.
func legacyStatePath(ledger string) string {
	switch {
	case ledger == "off" || strings.HasPrefix(ledger, "postgres://") || strings.HasPrefix(ledger, "postgresql://"):
		return ""
	case ledger == "":
		p, err := usage.DefaultLedgerPath()
		if err != nil {
			return ""
		}
		return filepath.Join(filepath.Dir(p), "drift-state.json")
	}
	return ledger + ".drift.json"
}

// driftStoreTimeout bounds each read or write of the history in the
// ledger database.
const driftStoreTimeout = 10 * time.Second

// StartDrift makes the drift monitor for model, loads its history and
// keeps saving it (every minute) until stop is called, which saves it
// once more. store is the open ledger (nil with --ledger off; ledger is
// the --ledger setting): with it, and without --drift-state, the history
// is kept in its database, as model's row. A history that cannot be read
// (another --drift-window) is logged and the monitor starts afresh. The
// store must stay open until stop returns. The error names a flag.
func StartDrift(d DriftFlags, ledger string, store usage.Store, model string, log *slog.Logger, env func(flag string) string) (mon *DriftMonitor, stop func(), err error) {
	cfg := DriftConfig{Model: model, Recent: d.Window, Baseline: d.BaselineWindow, MinRequests: d.MinRequests}
	if d.Baseline != "" {
		if cfg.Pinned, err = ReadWindowFile(d.Baseline); err != nil {
			return nil, nil, fmt.Errorf("--drift-baseline (%s): %w", env("drift-baseline"), err)
		}
	}
	mon = NewDriftMonitor(cfg)
	file, inLedger := d.History(store != nil)
	history := "none"
	var save func(state []byte) error
	switch {
	case file != "":
		history = file
		if err := mon.LoadFile(file); err != nil {
			log.Warn("drift: history not loaded; starting afresh", "history", file, "error", err)
		}
		save = func(b []byte) error { return writeFileAtomic(file, b) }
	case inLedger:
		history = "ledger database"
		loadFromLedger(mon, store, model, legacyStatePath(ledger), log)
		save = func(b []byte) error {
			ctx, cancel := context.WithTimeout(context.Background(), driftStoreTimeout)
			defer cancel()
			return store.SaveDriftState(ctx, model, b)
		}
	}
	log.Info("drift detection", "window", d.Window, "baseline", map[bool]string{true: d.Baseline, false: d.BaselineWindow.String()}[d.Baseline != ""], "history", history)
	if save == nil {
		return mon, func() {}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		mon.Keep(ctx, time.Minute, save, func(err error) { log.Warn("drift: saving the history", "history", history, "error", err) })
	}()
	return mon, func() { cancel(); <-done }, nil
}

// loadFromLedger adds model's history from store to mon; when the
// database holds none, the file legacy (a history kept beside a SQLite
// ledger) is read instead, if it exists. Failures are logged.
func loadFromLedger(mon *DriftMonitor, store usage.Store, model, legacy string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), driftStoreTimeout)
	defer cancel()
	b, found, err := store.LoadDriftState(ctx, model)
	switch {
	case err != nil:
		log.Warn("drift: history not loaded; starting afresh", "history", "ledger database", "error", err)
	case found:
		if err := mon.LoadState(b); err != nil {
			log.Warn("drift: history not loaded; starting afresh", "history", "ledger database", "model", model, "error", err)
		}
	case legacy != "":
		if _, err := os.Stat(legacy); err != nil {
			return
		}
		if err := mon.LoadFile(legacy); err != nil {
			log.Warn("drift: history not loaded; starting afresh", "history", legacy, "error", err)
			return
		}
		log.Info("drift: history read from a file; the ledger database keeps it from now on", "history", legacy)
	}
}

// DriftCommand is qwend drift snapshot (--state FILE | --ledger DSN
// --model NAME) --out FILE [--window baseline|recent]: it writes a window
// of the daemon's saved history as a pinned baseline. Errors name the
// flags.
func DriftCommand(args []string, stdout, stderr io.Writer) error {
	const usageLine = "usage: qwend drift snapshot (--state FILE | --ledger DSN --model NAME) --out FILE [--window baseline|recent]"
	if len(args) == 0 || args[0] != "snapshot" {
		fmt.Fprintln(stderr, usageLine)
		return errors.New("drift: want the subcommand snapshot")
	}
	fs := flag.NewFlagSet("drift snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d DriftFlags
	fs.DurationVar(&d.Window, "drift-window", time.Hour, "the daemon's --drift-window")
	fs.DurationVar(&d.BaselineWindow, "drift-baseline-window", 24*time.Hour, "the daemon's --drift-baseline-window")
	state := fs.String("state", "", "the daemon's drift history file (its --drift-state FILE)")
	ledger := fs.String("ledger", "", "the daemon's ledger holding the history (its --ledger: a SQLite file or postgres:// URL)")
	model := fs.String("model", "", "with --ledger: the served model whose history to read (its name in /v1/models)")
	out := fs.String("out", "", "the pinned baseline to write, for --drift-baseline (required)")
	which := fs.String("window", "baseline", "which window to pin: baseline (the rolling baseline now) or recent")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch {
	case (*state == "") == (*ledger == ""):
		return errors.New("drift snapshot: give one of --state FILE and --ledger DSN")
	case (*ledger != "") != (*model != ""):
		return errors.New("drift snapshot: --ledger and --model go together")
	case *out == "":
		return errors.New("drift snapshot: --out is required")
	case *which != "baseline" && *which != "recent":
		return fmt.Errorf("drift snapshot: --window is baseline or recent, not %q", *which)
	}
	mon := NewDriftMonitor(DriftConfig{Recent: d.Window, Baseline: d.BaselineWindow})
	from := *state
	if *ledger != "" {
		from = fmt.Sprintf("the history of %s in --ledger", *model)
		if err := loadSnapshotLedger(mon, *ledger, *model); err != nil {
			return fmt.Errorf("drift snapshot: %w", err)
		}
	} else if err := mon.LoadFile(*state); err != nil {
		return fmt.Errorf("drift snapshot: --state: %w", err)
	}
	w := mon.Window(*which == "recent")
	if w.Answered == 0 {
		return fmt.Errorf("drift snapshot: the %s window of %s holds no answered request", *which, from)
	}
	if err := WriteWindowFile(*out, w); err != nil {
		return fmt.Errorf("drift snapshot: --out: %w", err)
	}
	fmt.Fprintf(stdout, "drift snapshot: %s: %d requests (%d answered) from %s to %s\n", *out, w.Requests, w.Answered,
		w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	return nil
}

// loadSnapshotLedger adds model's history in the ledger dsn to mon. A
// SQLite file that does not exist is an error, not a new ledger.
func loadSnapshotLedger(mon *DriftMonitor, dsn, model string) error {
	if !strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "file:") {
		if _, err := os.Stat(dsn); err != nil {
			return fmt.Errorf("--ledger: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := usage.OpenLedger(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	b, found, err := store.LoadDriftState(ctx, model)
	if err != nil {
		return fmt.Errorf("--ledger: %w", err)
	}
	if !found {
		return fmt.Errorf("--ledger holds no drift history for --model %q", model)
	}
	if err := mon.LoadState(b); err != nil {
		return fmt.Errorf("--ledger, the history of %s: %w", model, err)
	}
	return nil
}
