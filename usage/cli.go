package usage

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// The command-line front ends of the ledger: qwend keys, qwend usage and
// qwend ledger (cmd/qwend dispatches to them).

// LedgerPaths turns --ledger into a database and a spill file: "" is the
// default SQLite file under the user's data directory.
func LedgerPaths(ledger string) (dsn, spill string, err error) {
	if ledger == "" {
		if ledger, err = DefaultLedgerPath(); err != nil {
			return "", "", err
		}
	}
	if strings.HasPrefix(ledger, "postgres://") || strings.HasPrefix(ledger, "postgresql://") {
		dir, err := DataDir()
		if err != nil {
			return "", "", err
		}
		return ledger, dir + "/ledger-spill.jsonl", nil
	}
	return ledger, ledger + ".spill.jsonl", nil
}

// OpenLedger opens the ledger a subcommand's --ledger names.
func OpenLedger(ctx context.Context, ledger string) (Store, error) {
	dsn, _, err := LedgerPaths(ledger)
	if err != nil {
		return nil, err
	}
	store, err := Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("--ledger: %w", err)
	}
	return store, nil
}

// RedactDSN hides a password in a database URL.
func RedactDSN(dsn string) string {
	if i, j := strings.Index(dsn, "://"), strings.LastIndex(dsn, "@"); i >= 0 && j > i {
		if k := strings.Index(dsn[i+3:j], ":"); k >= 0 {
			return dsn[:i+3+k] + ":***" + dsn[j:]
		}
	}
	return dsn
}

// KeysCommand is qwend keys add --file FILE --user NAME [--admin] [--daily-usd X] [--daily-tokens N].
func KeysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, "usage: qwend keys add --file FILE --user NAME [--admin] [--daily-usd X] [--daily-tokens N]")
		return errors.New("keys: want the subcommand add")
	}
	fs := flag.NewFlagSet("keys add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "the keys file (created when missing; holds only SHA-256 hashes)")
	var k Key
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
	key, err := AddKey(*file, k)
	if err != nil {
		return fmt.Errorf("keys add: %w", err)
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "keys: added a key for %s to %s; it is shown once, only its SHA-256 is kept\n", k.User, *file)
	return nil
}

// UsageCommand is qwend usage --ledger DSN [--date D | --from D --to D] [--group-by user|feature|model] [--format table|json|csv].
func UsageCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ledger := fs.String("ledger", "", "the ledger: a SQLite file or postgres:// URL (default: the serve default)")
	today := Day(time.Now())
	date := fs.String("date", "", "one UTC day, YYYY-MM-DD (default today)")
	from := fs.String("from", "", "first day of a range")
	to := fs.String("to", "", "last day of a range")
	group := fs.String("group-by", "user", "user, feature or model")
	format := fs.String("format", "table", "table, json or csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := Query{From: *from, To: *to, GroupBy: GroupBy(*group)}
	switch {
	case *date != "":
		q.From, q.To = *date, *date
	case q.From == "":
		q.From = today
	}
	if q.To == "" {
		q.To = max(q.From, today)
	}
	store, err := OpenLedger(ctx, *ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	groups, err := store.Daily(ctx, q)
	if err != nil {
		return err
	}
	return WriteReport(stdout, q, groups, *format)
}

// LedgerCommand is qwend ledger reprice --ledger DSN --prices FILE --from DAY.
func LedgerCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	p, err := LoadPrices(*prices)
	if err != nil {
		return fmt.Errorf("--prices: %w", err)
	}
	store, err := OpenLedger(ctx, *ledger)
	if err != nil {
		return err
	}
	defer store.Close()
	n, err := store.Reprice(ctx, *from, func(r Row) (int64, string) {
		c, v, _ := p.Cost(Usage{Model: r.Model, PromptTokens: r.PromptTokens, CachedTokens: r.CachedTokens,
			OutputTokens: r.CompletionTokens, Compute: time.Duration(r.ComputeSeconds * float64(time.Second))})
		return c, v
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "repriced %d rows from %s with prices %s\n", n, *from, p.Version)
	return nil
}
