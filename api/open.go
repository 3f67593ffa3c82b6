package api

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	otellog "go.opentelemetry.io/otel/log"

	"github.com/qwend/qwend/usage"
)

// AccountingSettings are what OpenAccounting opens.
type AccountingSettings struct {
	Keys               string  // the keys file; "" lets anyone in
	Ledger             string  // SQLite path, postgres:// URL, "off", or "" for the default SQLite file
	Prices             string  // the prices file; "": every cost is 0
	DefaultDailyUSD    float64 // a user's daily budget when their key sets none; 0: none
	DefaultDailyTokens int64
}

// OpenAccounting opens what s names: the keyring, the prices, the ledger
// (its store and writer) and the budgets. The returned close drains the
// ledger writer and closes the store. Errors name the setting through
// name ("keys" gives the flag and variable to name). Feedback events go
// to events.
func OpenAccounting(ctx context.Context, s AccountingSettings, log *slog.Logger, events otellog.Logger, name func(setting string) string) (*Accounting, func(context.Context), error) {
	acc := &Accounting{DefaultLimit: usage.Limit{MicroUSD: int64(s.DefaultDailyUSD * 1e6), Tokens: s.DefaultDailyTokens}, Events: events}
	closeAll := func(context.Context) {}
	if s.Keys != "" {
		f, err := usage.LoadKeys(s.Keys)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name("keys"), err)
		}
		acc.Keys = usage.NewKeyring(f)
		log.InfoContext(ctx, "API keys required", "keys", acc.Keys.Len())
	}
	if s.Prices != "" {
		p, err := usage.LoadPrices(s.Prices)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name("prices"), err)
		}
		acc.Prices = p
	}
	if s.Ledger != "off" {
		dsn, spill, err := usage.LedgerPaths(s.Ledger)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name("ledger"), err)
		}
		store, err := usage.Open(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name("ledger"), err)
		}
		w := usage.NewWriter(store, usage.WriterOptions{SpillPath: spill, Logger: log})
		acc.Store, acc.Ledger = store, w
		closeAll = func(ctx context.Context) {
			if err := w.Close(ctx); err != nil {
				log.Error("ledger: drain", "error", err)
			}
			store.Close()
		}
		log.InfoContext(ctx, "ledger", "database", usage.RedactDSN(dsn), "spill", spill)
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
