package quality

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
	State          string        // where the history is kept across restarts; "": beside a SQLite ledger
	MinRequests    int
}

// Register adds the flags to fs.
func (d *DriftFlags) Register(fs *flag.FlagSet) {
	fs.DurationVar(&d.Window, "drift-window", time.Hour, "drift detection: the recent window compared with the baseline")
	fs.DurationVar(&d.BaselineWindow, "drift-baseline-window", 24*time.Hour, "drift detection: the rolling baseline window, before the recent one")
	fs.StringVar(&d.Baseline, "drift-baseline", "", "drift detection: a pinned baseline file (qwend drift snapshot) instead of the rolling window")
	fs.StringVar(&d.State, "drift-state", "", "drift detection: history kept across restarts (default: beside a SQLite ledger; off: none)")
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

// StatePath is where the history is kept: --drift-state, else beside a
// SQLite ledger (ledger is --ledger: "" is the default SQLite file); ""
// when there is none.
func (d *DriftFlags) StatePath(ledger string) (string, error) {
	switch {
	case d.State == "off":
		return "", nil
	case d.State != "":
		return d.State, nil
	case ledger == "off" || strings.HasPrefix(ledger, "postgres://") || strings.HasPrefix(ledger, "postgresql://"):
		return "", nil
	case ledger == "":
		p, err := usage.DefaultLedgerPath()
		if err != nil {
			return "", err
		}
		return filepath.Join(filepath.Dir(p), "drift-state.json"), nil
	}
	return ledger + ".drift.json", nil
}

// StartDrift makes the drift monitor for model, loads its history and
// keeps saving it (every minute) until stop is called, which saves it
// once more.
func StartDrift(d DriftFlags, ledger, model string, log *slog.Logger, env func(flag string) string) (mon *DriftMonitor, stop func(), err error) {
	cfg := DriftConfig{Model: model, Recent: d.Window, Baseline: d.BaselineWindow, MinRequests: d.MinRequests}
	if d.Baseline != "" {
		if cfg.Pinned, err = ReadWindowFile(d.Baseline); err != nil {
			return nil, nil, fmt.Errorf("--drift-baseline (%s): %w", env("drift-baseline"), err)
		}
	}
	mon = NewDriftMonitor(cfg)
	path, err := d.StatePath(ledger)
	if err != nil {
		return nil, nil, fmt.Errorf("--drift-state (%s): %w", env("drift-state"), err)
	}
	if path == "" {
		return mon, func() {}, nil
	}
	if err := mon.LoadFile(path); err != nil {
		// a history at another resolution (another --drift-window) starts afresh
		log.Warn("drift: history not loaded; starting afresh", "path", path, "error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		mon.Keep(ctx, path, time.Minute, func(err error) { log.Warn("drift: saving the history", "path", path, "error", err) })
	}()
	log.Info("drift detection", "window", d.Window, "baseline", map[bool]string{true: d.Baseline, false: d.BaselineWindow.String()}[d.Baseline != ""], "history", path)
	return mon, func() { cancel(); <-done }, nil
}

// DriftCommand is qwend drift snapshot --state FILE --out FILE.
func DriftCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "snapshot" {
		fmt.Fprintln(stderr, "usage: qwend drift snapshot --state FILE --out FILE [--window baseline|recent]")
		return errors.New("drift: want the subcommand snapshot")
	}
	fs := flag.NewFlagSet("drift snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d DriftFlags
	fs.DurationVar(&d.Window, "drift-window", time.Hour, "the daemon's --drift-window")
	fs.DurationVar(&d.BaselineWindow, "drift-baseline-window", 24*time.Hour, "the daemon's --drift-baseline-window")
	state := fs.String("state", "", "the daemon's drift history (--drift-state; required)")
	out := fs.String("out", "", "the pinned baseline to write, for --drift-baseline (required)")
	which := fs.String("window", "baseline", "which window to pin: baseline (the rolling baseline now) or recent")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *state == "" || *out == "" || (*which != "baseline" && *which != "recent") {
		return errors.New("drift snapshot: --state and --out are required; --window is baseline or recent")
	}
	mon := NewDriftMonitor(DriftConfig{Recent: d.Window, Baseline: d.BaselineWindow})
	if err := mon.LoadFile(*state); err != nil {
		return fmt.Errorf("drift snapshot: %w", err)
	}
	w := mon.Window(*which == "recent")
	if w.Answered == 0 {
		return fmt.Errorf("drift snapshot: the %s window of %s holds no answered request", *which, *state)
	}
	if err := WriteWindowFile(*out, w); err != nil {
		return fmt.Errorf("drift snapshot: %w", err)
	}
	fmt.Fprintf(stdout, "drift snapshot: %s: %d requests (%d answered) from %s to %s\n", *out, w.Requests, w.Answered,
		w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	return nil
}
