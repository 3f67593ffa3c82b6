package main

import (
	"context"
	"fmt"
	"log/slog"
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
		dsn, spill, err := usage.LedgerPaths(cfg.Ledger)
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
