package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/qwend/qwend/api"
	telemetry "github.com/qwend/qwend/otel"
	"github.com/qwend/qwend/usage"
)

// accounting opens what --keys, --ledger, --prices and the default budgets
// name; the returned close drains the ledger writer and closes the store.
func accounting(ctx context.Context, cfg serveConfig, log *slog.Logger, prov *telemetry.Providers) (*api.Accounting, func(context.Context), error) {
	acc := &api.Accounting{DefaultLimit: usage.Limit{MicroUSD: int64(cfg.DefaultDailyUSD * 1e6), Tokens: cfg.DefaultDailyTokens},
		Events: prov.LoggerProvider.Logger("github.com/qwend/qwend/api")}
	closeAll := func(context.Context) {}
	if cfg.Keys != "" {
		f, err := usage.LoadKeys(cfg.Keys)
		if err != nil {
			return nil, nil, fmt.Errorf("--keys (QWEND_KEYS): %w", err)
		}
		acc.Keys = usage.NewKeyring(f)
		log.InfoContext(ctx, "API keys required", "keys", acc.Keys.Len())
	}
	if cfg.Prices != "" {
		p, err := usage.LoadPrices(cfg.Prices)
		if err != nil {
			return nil, nil, fmt.Errorf("--prices (QWEND_PRICES): %w", err)
		}
		acc.Prices = p
	}
	if cfg.Ledger != "off" {
		dsn, spill, err := ledgerPaths(cfg.Ledger)
		if err != nil {
			return nil, nil, fmt.Errorf("--ledger (QWEND_LEDGER): %w", err)
		}
		store, err := usage.Open(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("--ledger (QWEND_LEDGER): %w", err)
		}
		w := usage.NewWriter(store, usage.WriterOptions{SpillPath: spill, Logger: log})
		acc.Store, acc.Ledger = store, w
		closeAll = func(ctx context.Context) {
			if err := w.Close(ctx); err != nil {
				log.Error("ledger: drain", "error", err)
			}
			store.Close()
		}
		log.InfoContext(ctx, "ledger", "database", redact(dsn), "spill", spill)
	}
	if !acc.DefaultLimit.None() || acc.Keys != nil {
		var src usage.SpendSource
		if acc.Store != nil {
			src = acc.Store
		}
		// a shared PostgreSQL ledger holds other replicas' spend: read it often
		acc.Budgets = usage.NewBudgets(src, 5*time.Second)
	}
	return acc, closeAll, nil
}

// ledgerPaths turns --ledger into a database and a spill file: "" is the
// default SQLite file under the user's data directory.
func ledgerPaths(ledger string) (dsn, spill string, err error) {
	if ledger == "" {
		if ledger, err = usage.DefaultLedgerPath(); err != nil {
			return "", "", err
		}
	}
	if strings.HasPrefix(ledger, "postgres://") || strings.HasPrefix(ledger, "postgresql://") {
		dir, err := usage.DataDir()
		if err != nil {
			return "", "", err
		}
		return ledger, dir + "/ledger-spill.jsonl", nil
	}
	return ledger, ledger + ".spill.jsonl", nil
}

// openLedger opens the ledger a subcommand's --ledger names.
func openLedger(ctx context.Context, ledger string) (usage.Store, error) {
	dsn, _, err := ledgerPaths(ledger)
	if err != nil {
		return nil, err
	}
	store, err := usage.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("--ledger: %w", err)
	}
	return store, nil
}

// redact hides a password in a database URL.
func redact(dsn string) string {
	if i, j := strings.Index(dsn, "://"), strings.LastIndex(dsn, "@"); i >= 0 && j > i {
		if k := strings.Index(dsn[i+3:j], ":"); k >= 0 {
			return dsn[:i+3+k] + ":***" + dsn[j:]
		}
	}
	return dsn
}

// keysCommand: qwend keys add --file FILE --user NAME [--admin] [--daily-usd X] [--daily-tokens N].
func keysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, "usage: qwend keys add --file FILE --user NAME [--admin] [--daily-usd X] [--daily-tokens N]")
		return errors.New("keys: want the subcommand add")
	}
	fs := flag.NewFlagSet("keys add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "the keys file (created when missing; holds only SHA-256 hashes)")
	var k usage.Key
	fs.StringVar(&k.User, "user", "", "the user the key stands for")
	fs.BoolVar(&k.Admin, "admin", false, "the key may read every user's usage")
	fs.Float64Var(&k.DailyUSD, "daily-usd", 0, "daily budget in US dollars (0: the server's default)")
	fs.Int64Var(&k.DailyTokens, "daily-tokens", 0, "daily budget in tokens (0: the server's default)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" || k.User == "" {
		return errors.New("keys add: --file and --user are required")
	}
	key, err := usage.AddKey(*file, k)
	if err != nil {
		return fmt.Errorf("keys add: %w", err)
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "keys: added a key for %s to %s; it is shown once, only its SHA-256 is kept\n", k.User, *file)
	return nil
}

// usageCommand: qwend usage --ledger DSN [--date D | --from D --to D] [--group-by user|feature|model] [--format table|json|csv].
func usageCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ledger := fs.String("ledger", "", "the ledger: a SQLite file or postgres:// URL (default: the serve default)")
	today := usage.Day(time.Now())
	date := fs.String("date", "", "one UTC day, YYYY-MM-DD (default today)")
	from := fs.String("from", "", "first day of a range")
	to := fs.String("to", "", "last day of a range")
	group := fs.String("group-by", "user", "user, feature or model")
	format := fs.String("format", "table", "table, json or csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := usage.Query{From: *from, To: *to, GroupBy: usage.GroupBy(*group)}
	switch {
	case *date != "":
		q.From, q.To = *date, *date
	case q.From == "":
		q.From = today
	}
	if q.To == "" {
		q.To = max(q.From, today)
	}
	store, err := openLedger(ctx, *ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	groups, err := store.Daily(ctx, q)
	if err != nil {
		return err
	}
	return usage.WriteReport(stdout, q, groups, *format)
}

// ledgerCommand: qwend ledger reprice --ledger DSN --prices FILE --from DAY.
func ledgerCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reprice" {
		fmt.Fprintln(stderr, "usage: qwend ledger reprice --ledger DSN --prices FILE --from YYYY-MM-DD")
		return errors.New("ledger: want the subcommand reprice")
	}
	fs := flag.NewFlagSet("ledger reprice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ledger := fs.String("ledger", "", "the ledger: a SQLite file or postgres:// URL (default: the serve default)")
	prices := fs.String("prices", "", "the new prices file (required)")
	from := fs.String("from", "", "first UTC day to reprice, YYYY-MM-DD (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *prices == "" || *from == "" {
		return errors.New("ledger reprice: --prices and --from are required")
	}
	p, err := usage.LoadPrices(*prices)
	if err != nil {
		return fmt.Errorf("--prices: %w", err)
	}
	store, err := openLedger(ctx, *ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	n, err := store.Reprice(ctx, *from, func(r usage.Row) (int64, string) {
		c, v, _ := p.Cost(usage.Usage{Model: r.Model, PromptTokens: r.PromptTokens, CachedTokens: r.CachedTokens,
			OutputTokens: r.CompletionTokens, Compute: time.Duration(r.ComputeSeconds * float64(time.Second))})
		return c, v
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "repriced %d rows from %s with prices %s\n", n, *from, p.Version)
	return nil
}
