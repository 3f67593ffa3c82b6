package usage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/qwend/qwend/usage"
	"github.com/qwend/qwend/usage/usagetest"
)

// Budgets read spend from a real ledger, hold reservations while requests
// run, and refuse once settled spend plus holds reach the limit.
func TestBudgets(t *testing.T) {
	ctx := context.Background()
	store, err := usage.Open(ctx, usagetest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now().UTC()
	// 80 tokens spent earlier today, by an earlier process
	if err := store.Insert(ctx, []usage.Row{{RequestID: "old", Time: now, User: "u", Model: "m", PromptTokens: 50, CompletionTokens: 30, CostMicroUSD: 800}}); err != nil {
		t.Fatal(err)
	}
	b := usage.NewBudgets(store, 0)
	limit := usage.Limit{Tokens: 100}
	r1, err := b.Reserve(ctx, "u", limit, usage.Spend{Tokens: 15})
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	// 80 + 15 held < 100: admitted; then 80 + 15 + 10 >= 100: refused
	r2, err := b.Reserve(ctx, "u", limit, usage.Spend{Tokens: 10})
	if err != nil {
		t.Fatalf("second: %v", err)
	}
	_, err = b.Reserve(ctx, "u", limit, usage.Spend{Tokens: 1})
	var be *usage.BudgetError
	if !errors.As(err, &be) || be.Spent.Tokens != 105 || be.Limit.Tokens != 100 || !be.ResetAt.Equal(usage.NextReset(now)) {
		t.Fatalf("third: %v", err)
	}
	// settling for less frees the rest of the hold
	r1.Settle(usage.Spend{Tokens: 5})
	r2.Settle(usage.Spend{Tokens: 5})
	r2.Settle(usage.Spend{Tokens: 500}) // only the first settle counts
	if _, err := b.Reserve(ctx, "u", limit, usage.Spend{Tokens: 1}); err != nil {
		t.Fatalf("after settling 90 of 100: %v", err)
	}
	// another user, and no limit, are not affected
	if r, err := b.Reserve(ctx, "v", limit, usage.Spend{Tokens: 99}); err != nil || r == nil {
		t.Fatalf("other user: %v", err)
	}
	if r, err := b.Reserve(ctx, "u", usage.Limit{}, usage.Spend{Tokens: 1000}); err != nil || r != nil {
		t.Fatalf("no limit: %v %v", r, err)
	}
	var nilRes *usage.Reservation
	nilRes.Settle(usage.Spend{Tokens: 1}) // safe
}

// Many concurrent reservations against one limit: what is admitted holds
// at most one reservation beyond the limit.
func TestBudgetsConcurrentOvershootIsOneReservation(t *testing.T) {
	b := usage.NewBudgets(nil, 0)
	limit := usage.Limit{MicroUSD: 1000}
	const est = 70
	var mu sync.Mutex
	var held int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if r, err := b.Reserve(context.Background(), "u", limit, usage.Spend{MicroUSD: est}); err == nil && r != nil {
				mu.Lock()
				held += est
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if held < limit.MicroUSD || held >= limit.MicroUSD+est {
		t.Errorf("held %d for a limit of %d: want at least the limit and under one more reservation", held, limit.MicroUSD)
	}
}

func TestNextReset(t *testing.T) {
	at := time.Date(2026, 11, 30, 23, 59, 59, 0, time.FixedZone("x", -5*3600))
	if got := usage.NextReset(at); !got.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("next reset after %v: %v", at, got)
	}
	if usage.Day(at) != "2026-12-01" {
		t.Errorf("day %s", usage.Day(at))
	}
}
