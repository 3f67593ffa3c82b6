package usage

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Limit is a daily budget; a zero field is no limit of that kind.
type Limit struct {
	MicroUSD int64 // micro-dollars per UTC day
	Tokens   int64 // prompt plus completion tokens per UTC day
}

// None reports whether l limits nothing.
func (l Limit) None() bool { return l.MicroUSD <= 0 && l.Tokens <= 0 }

// SpendSource reads what a user spent on a day from the ledger (Store
// satisfies it).
type SpendSource interface {
	Spend(ctx context.Context, day, user string) (Spend, error)
}

// BudgetError is a refusal: the user's spend today, with what is in flight,
// has reached a limit.
type BudgetError struct {
	User    string
	Limit   Limit
	Spent   Spend     // settled today, including requests in flight
	ResetAt time.Time // the next UTC midnight
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("daily budget of user %q exceeded (limit %s, spent %s); it resets at %s",
		e.User, e.Limit.describe(), e.Spent.describe(), e.ResetAt.Format(time.RFC3339))
}

func (l Limit) describe() string {
	switch {
	case l.MicroUSD > 0 && l.Tokens > 0:
		return fmt.Sprintf("$%.6f and %d tokens", MicroToUSD(l.MicroUSD), l.Tokens)
	case l.MicroUSD > 0:
		return fmt.Sprintf("$%.6f", MicroToUSD(l.MicroUSD))
	}
	return fmt.Sprintf("%d tokens", l.Tokens)
}

func (s Spend) describe() string {
	return fmt.Sprintf("$%.6f and %d tokens", MicroToUSD(s.MicroUSD), s.Tokens)
}

// Budgets enforces daily per-user limits at admission with reservations.
//
// A request is admitted while the user's settled spend today plus the
// reservations of their requests in flight is below the limit; it then
// reserves its estimate (prompt tokens plus max_tokens, capped by the
// caller) until it ends, when the reservation is replaced by what it
// really used. So concurrent requests of one user cannot overshoot a limit
// by more than one request's reservation (plus, where the estimate was
// capped, what that request used beyond its cap). Spend comes from the
// ledger when a user is first seen on a day and again every refresh
// interval (so that, with a shared PostgreSQL ledger, other replicas'
// committed spend counts too); between refreshes this replica's own
// settled requests are added locally.
type Budgets struct {
	src     SpendSource
	refresh time.Duration
	now     func() time.Time

	mu    sync.Mutex
	day   string
	users map[string]*userBudget
}

type userBudget struct {
	stored    Spend     // read from the ledger at loaded
	local     Spend     // settled here since loaded
	reserved  Spend     // in flight here
	loaded    time.Time // zero: never read
	localBase Spend     // local as it was at the last read (already in stored once committed)
}

// NewBudgets reads spend from src (nil: only what this process settles),
// re-reading a user's spend at most every refresh (0: once a day).
func NewBudgets(src SpendSource, refresh time.Duration) *Budgets {
	return &Budgets{src: src, refresh: refresh, now: time.Now, users: map[string]*userBudget{}}
}

// Reservation is an admitted request's hold on its user's budget.
type Reservation struct {
	b    *Budgets
	user string
	day  string
	held Spend
	once sync.Once
}

// Day is the UTC day of t, as the ledger writes it.
func Day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// NextReset is the UTC midnight after t.
func NextReset(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// Reserve admits a request of user under limit, holding est until Settle,
// or refuses it with a *BudgetError. A request with no limit is admitted
// without a hold. Errors reading the ledger admit the request (a ledger
// outage must not stop serving) and are returned alongside it.
func (b *Budgets) Reserve(ctx context.Context, user string, limit Limit, est Spend) (*Reservation, error) {
	if limit.None() {
		return nil, nil
	}
	now := b.now()
	day := Day(now)
	var readErr error
	b.mu.Lock()
	if b.day != day {
		b.day, b.users = day, map[string]*userBudget{}
	}
	u := b.users[user]
	if u == nil {
		u = &userBudget{}
		b.users[user] = u
	}
	stale := u.loaded.IsZero() || b.refresh > 0 && now.Sub(u.loaded) >= b.refresh
	b.mu.Unlock()

	if stale && b.src != nil {
		s, err := b.src.Spend(ctx, day, user)
		b.mu.Lock()
		if err != nil {
			readErr = fmt.Errorf("read spend: %w", err)
		} else if b.day == day {
			// what was settled here before this read is in s once its row
			// is committed; count the larger of the two
			u.stored, u.localBase, u.loaded = s, u.local, now
		}
		b.mu.Unlock()
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.day != day {
		b.day, b.users = day, map[string]*userBudget{}
		b.users[user] = u
	}
	spent := u.spent()
	total := Spend{MicroUSD: spent.MicroUSD + u.reserved.MicroUSD, Tokens: spent.Tokens + u.reserved.Tokens}
	if limit.MicroUSD > 0 && total.MicroUSD >= limit.MicroUSD || limit.Tokens > 0 && total.Tokens >= limit.Tokens {
		return nil, &BudgetError{User: user, Limit: limit, Spent: total, ResetAt: NextReset(now)}
	}
	u.reserved.MicroUSD += est.MicroUSD
	u.reserved.Tokens += est.Tokens
	return &Reservation{b: b, user: user, day: day, held: est}, readErr
}

// spent is what the user settled today: the ledger's figure, plus what was
// settled here since it was read (rows not yet committed), never less than
// what was settled here in all.
func (u *userBudget) spent() Spend {
	s := Spend{
		MicroUSD: u.stored.MicroUSD + u.local.MicroUSD - u.localBase.MicroUSD,
		Tokens:   u.stored.Tokens + u.local.Tokens - u.localBase.Tokens,
	}
	s.MicroUSD = max(s.MicroUSD, u.local.MicroUSD)
	s.Tokens = max(s.Tokens, u.local.Tokens)
	return s
}

// Settle releases the hold and counts what the request used. Safe on a nil
// reservation and more than once (only the first counts).
func (r *Reservation) Settle(used Spend) {
	if r == nil {
		return
	}
	r.once.Do(func() {
		b := r.b
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.day != r.day {
			return // a new day: yesterday's spend no longer counts
		}
		u := b.users[r.user]
		if u == nil {
			return
		}
		u.reserved.MicroUSD -= r.held.MicroUSD
		u.reserved.Tokens -= r.held.Tokens
		u.local.MicroUSD += used.MicroUSD
		u.local.Tokens += used.Tokens
	})
}
