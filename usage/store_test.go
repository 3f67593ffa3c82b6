package usage_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qwend/qwend/usage"
	"github.com/qwend/qwend/usage/usagetest"
)

// ledgerKinds are the Store implementations every suite test runs against.
var ledgerKinds = []struct {
	name string
	dsn  func(testing.TB) string
}{
	{"sqlite", sqliteLedgerDSN},
	{"postgres", usagetest.Postgres},
}

// sqliteLedgerDSN is a ledger file in a directory Open has to create.
func sqliteLedgerDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "ledger", "usage.db")
}

// forEachLedger runs test in parallel against a fresh ledger of each kind.
func forEachLedger(t *testing.T, test func(t *testing.T, dsn string, s usage.Store)) {
	for _, kind := range ledgerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			dsn := kind.dsn(t)
			s := openLedger(t, dsn)
			test(t, dsn, s)
		})
	}
}

func openLedger(t *testing.T, dsn string) usage.Store {
	t.Helper()
	s, err := usage.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open(%q): %v", dsn, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var ledgerBase = time.Date(2031, 3, 4, 10, 0, 0, 123456789, time.UTC)

// ledgerRow is a complete row: request i on day ledgerBase+day, with costs and
// tokens derived from i so that every sum is distinct.
func ledgerRow(i, day int, user, feature, model string) usage.Row {
	t := ledgerBase.AddDate(0, 0, day).Add(time.Duration(i) * time.Second)
	r := usage.Row{
		RequestID:        fmt.Sprintf("req-%05d", i),
		ResponseID:       fmt.Sprintf("chatcmpl-%05d", i),
		Time:             t,
		Day:              t.Format("2006-01-02"),
		User:             user,
		EndUser:          "end-" + user,
		Feature:          feature,
		Session:          fmt.Sprintf("sess-%d", i%3),
		Model:            model,
		Endpoint:         "POST /v1/chat/completions",
		PromptTokens:     int64(100 + i),
		CachedTokens:     int64(i % 50),
		CompletionTokens: int64(10 + 2*i),
		LatencyMS:        12.5 + float64(i),
		TTFTMS:           3.25,
		Status:           200,
		CostMicroUSD:     int64(1000 + 7*i),
		PriceVersion:     "v1",
		ComputeSeconds:   0.5,
		TraceID:          fmt.Sprintf("%032x", i),
	}
	if i%5 == 0 {
		r.Status, r.ErrorType, r.CompletionTokens, r.TTFTMS = 500, "engine_error", 0, 0
	}
	return r
}

// ledgerFixture is 60 rows over days 0..2 (2031-03-04..06), 3 users, 2 features,
// 2 models.
func ledgerFixture() []usage.Row {
	users := []string{"alice", "bob", "carol"}
	features := []string{"chat", "search"}
	models := []string{"qwen3-0.6b", "qwen3-8b"}
	var rows []usage.Row
	for i := 0; i < 60; i++ {
		rows = append(rows, ledgerRow(i, i%3, users[(i/3)%3], features[(i/2)%2], models[(i/7)%2]))
	}
	return rows
}

func ledgerDay(d int) string { return ledgerBase.AddDate(0, 0, d).Format("2006-01-02") }

// wantGroups computes a report from rows directly, the way Daily must.
func wantGroups(rows []usage.Row, q usage.Query) []usage.Group {
	sums := map[string]*usage.Group{}
	for _, r := range rows {
		if r.Day < q.From || r.Day > q.To || (q.User != "" && r.User != q.User) {
			continue
		}
		key := map[usage.GroupBy]string{usage.ByUser: r.User, usage.ByFeature: r.Feature, usage.ByModel: r.Model, "": r.User}[q.GroupBy]
		g := sums[key]
		if g == nil {
			g = &usage.Group{Key: key}
			sums[key] = g
		}
		g.Requests++
		if r.Status >= 400 || r.ErrorType != "" {
			g.Errors++
		}
		g.PromptTokens += r.PromptTokens
		g.CachedTokens += r.CachedTokens
		g.CompletionTokens += r.CompletionTokens
		g.CostMicroUSD += r.CostMicroUSD
	}
	out := []usage.Group{}
	for _, g := range sums {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// rowsByTime is a copy of rows in the order Rows returns them.
func rowsByTime(rows []usage.Row) []usage.Row {
	out := append([]usage.Row{}, rows...)
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].RequestID < out[j].RequestID
	})
	return out
}

func dailyOf(t *testing.T, s usage.Store, q usage.Query) []usage.Group {
	t.Helper()
	got, err := s.Daily(context.Background(), q)
	if err != nil {
		t.Fatalf("Daily(%+v): %v", q, err)
	}
	if got == nil {
		got = []usage.Group{}
	}
	return got
}

func storedRows(t *testing.T, s usage.Store) []usage.Row {
	t.Helper()
	rows, err := s.Rows(context.Background(), "2000-01-01", "2099-12-31")
	if err != nil {
		t.Fatalf("Rows: %v", err)
	}
	return rows
}

func insertRows(t *testing.T, s usage.Store, rows []usage.Row) {
	t.Helper()
	if err := s.Insert(context.Background(), rows); err != nil {
		t.Fatalf("Insert(%d rows): %v", len(rows), err)
	}
}

func TestStoreInsertAndRollup(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		rows := ledgerFixture()
		insertRows(t, s, rows[:25]) // two transactions: the rollup adds up across them
		insertRows(t, s, rows[25:])

		got := storedRows(t, s)
		inTimeOrder := rowsByTime(rows)
		if !reflect.DeepEqual(got, inTimeOrder) {
			t.Fatalf("Rows differ from what was inserted, in time order:\n got[0] %+v\nwant[0] %+v (%d vs %d rows)", got[0], inTimeOrder[0], len(got), len(rows))
		}
		q := usage.Query{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByUser}
		if g, w := dailyOf(t, s, q), wantGroups(rows, q); !reflect.DeepEqual(g, w) {
			t.Errorf("Daily by user:\n got %+v\nwant %+v", g, w)
		}
	})
}

func TestStoreReplayIsIdempotent(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		rows := ledgerFixture()
		insertRows(t, s, rows)
		q := usage.Query{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByModel}
		before := dailyOf(t, s, q)

		insertRows(t, s, rows) // the whole batch again
		if got := storedRows(t, s); len(got) != len(rows) {
			t.Fatalf("after replay: %d rows, want %d", len(got), len(rows))
		}
		if after := dailyOf(t, s, q); !reflect.DeepEqual(after, before) {
			t.Fatalf("replay changed the rollup:\n got %+v\nwant %+v", after, before)
		}

		// A batch mixing old rows, a new one and the new one twice counts
		// the new one once.
		fresh := ledgerRow(1000, 1, "dave", "chat", "qwen3-8b")
		insertRows(t, s, []usage.Row{rows[3], fresh, rows[4], fresh})
		all := append(append([]usage.Row{}, rows...), fresh)
		if got := storedRows(t, s); len(got) != len(all) {
			t.Fatalf("after mixed batch: %d rows, want %d", len(got), len(all))
		}
		if g, w := dailyOf(t, s, q), wantGroups(all, q); !reflect.DeepEqual(g, w) {
			t.Errorf("rollup after mixed batch:\n got %+v\nwant %+v", g, w)
		}
	})
}

func TestStoreDaily(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		rows := ledgerFixture()
		insertRows(t, s, rows)
		queries := []usage.Query{
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByUser},
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByFeature},
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByModel},
			{From: ledgerDay(1), To: ledgerDay(2), GroupBy: usage.ByModel},                // From excludes day 0
			{From: ledgerDay(0), To: ledgerDay(1), GroupBy: usage.ByFeature},              // To excludes day 2
			{From: ledgerDay(1), To: ledgerDay(1), GroupBy: usage.ByFeature, User: "bob"}, // one day, one user
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByModel, User: "carol"}, // restricted to a user
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: "", User: "alice"},            // "" groups by user
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: usage.ByUser, User: "nobody"}, // no rows
			{From: ledgerDay(5), To: ledgerDay(9), GroupBy: usage.ByUser},                 // no days
			{From: ledgerDay(2), To: ledgerDay(0), GroupBy: usage.ByUser},                 // empty range
		}
		for _, q := range queries {
			w := wantGroups(rows, q)
			g := dailyOf(t, s, q)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("Daily(%+v):\n got %+v\nwant %+v", q, g, w)
			}
		}
		// The fixture's shape makes the checks above meaningful.
		if n := len(wantGroups(rows, queries[0])); n != 3 {
			t.Fatalf("fixture has %d users, want 3", n)
		}
		for _, bad := range []usage.Query{
			{From: ledgerDay(0), To: ledgerDay(2), GroupBy: "endpoint"},
			{From: "2031-3-4", To: ledgerDay(2)},
			{From: ledgerDay(0), To: ""},
			{From: ledgerDay(0), To: "2031-03-04; DROP TABLE daily"},
		} {
			if _, err := s.Daily(context.Background(), bad); !errors.Is(err, usage.ErrInvalid) {
				t.Errorf("Daily(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
	})
}

func TestStoreSpend(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		rows := ledgerFixture()
		insertRows(t, s, rows)
		for _, c := range []struct {
			day  int
			user string
		}{{0, "alice"}, {1, "bob"}, {2, "carol"}, {1, "alice"}, {0, "nobody"}} {
			var w usage.Spend
			for _, r := range rows {
				if r.Day == ledgerDay(c.day) && r.User == c.user {
					w.MicroUSD += r.CostMicroUSD
					w.Tokens += r.PromptTokens + r.CompletionTokens
				}
			}
			got, err := s.Spend(context.Background(), ledgerDay(c.day), c.user)
			if err != nil {
				t.Fatalf("Spend: %v", err)
			}
			if got != w {
				t.Errorf("Spend(%s, %s) = %+v, want %+v", ledgerDay(c.day), c.user, got, w)
			}
			if c.user != "nobody" && w.MicroUSD == 0 {
				t.Errorf("fixture: %s spent nothing on %s", c.user, ledgerDay(c.day))
			}
		}
		if _, err := s.Spend(context.Background(), "yesterday", "alice"); !errors.Is(err, usage.ErrInvalid) {
			t.Errorf("Spend(bad day) = %v, want ErrInvalid", err)
		}
	})
}

func TestStoreLookupRequest(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		rows := ledgerFixture()
		noResp := ledgerRow(2000, 0, "alice", "chat", "qwen3-8b")
		noResp.ResponseID = ""
		insertRows(t, s, append(rows, noResp))
		ctx := context.Background()
		for _, id := range []string{rows[7].RequestID, rows[7].ResponseID} {
			got, ok, err := s.LookupRequest(ctx, id)
			if err != nil || !ok {
				t.Fatalf("LookupRequest(%q) = %v, %v", id, ok, err)
			}
			if !reflect.DeepEqual(got, rows[7]) {
				t.Errorf("LookupRequest(%q):\n got %+v\nwant %+v", id, got, rows[7])
			}
		}
		if got, ok, err := s.LookupRequest(ctx, noResp.RequestID); err != nil || !ok || got.RequestID != noResp.RequestID {
			t.Errorf("LookupRequest(%q) = %q, %v, %v", noResp.RequestID, got.RequestID, ok, err)
		}
		for _, id := range []string{"", "req-99999", "chatcmpl-99999"} {
			if _, ok, err := s.LookupRequest(ctx, id); err != nil || ok {
				t.Errorf("LookupRequest(%q) = found %v, %v; want not found", id, ok, err)
			}
		}
	})
}

func TestStoreFeedback(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		ctx := context.Background()
		v := 0.75
		t0 := ledgerBase
		fbs := []usage.Feedback{
			{ID: "fb-1", RequestID: "req-00001", Score: 1, Label: "up", Value: &v, Comment: "good", User: "alice", Feature: "chat", Time: t0},
			{ID: "fb-2", RequestID: "req-00002", Score: -1, Label: "down", User: "bob", Time: t0.Add(time.Hour)},
			{ID: "fb-3", RequestID: "req-00003", Score: 1, Label: "up", User: "bob", Time: t0.Add(2 * time.Hour)},
		}
		for _, f := range fbs {
			created, err := s.AddFeedback(ctx, f)
			if err != nil || !created {
				t.Fatalf("AddFeedback(%s) = %v, %v; want created", f.ID, created, err)
			}
		}
		// The same id again, even with other content, changes nothing.
		again := fbs[0]
		again.Label, again.Score = "down", -1
		if created, err := s.AddFeedback(ctx, again); err != nil || created {
			t.Fatalf("AddFeedback(repeat) = %v, %v; want not created", created, err)
		}
		for _, c := range []struct {
			since time.Time
			want  map[string]int64
		}{
			{time.Time{}, map[string]int64{"up": 2, "down": 1}},
			{t0, map[string]int64{"up": 2, "down": 1}},
			{t0.Add(time.Minute), map[string]int64{"up": 1, "down": 1}},
			{t0.Add(90 * time.Minute), map[string]int64{"up": 1}},
			{t0.Add(3 * time.Hour), map[string]int64{}},
		} {
			got, err := s.FeedbackCounts(ctx, c.since)
			if err != nil {
				t.Fatalf("FeedbackCounts: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("FeedbackCounts(%v) = %v, want %v", c.since, got, c.want)
			}
		}
		if _, err := s.AddFeedback(ctx, usage.Feedback{Label: "up", Score: 1}); !errors.Is(err, usage.ErrInvalid) {
			t.Errorf("AddFeedback without id = %v, want ErrInvalid", err)
		}
	})
}

func TestStoreReprice(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		ctx := context.Background()
		// More rows than Reprice reads in one page, over four days.
		var rows []usage.Row
		for i := 0; i < 1300; i++ {
			rows = append(rows, ledgerRow(i, i%4, fmt.Sprintf("u%d", i%3), "chat", "qwen3-8b"))
		}
		rows[1].CostMicroUSD = 2 * (rows[1].PromptTokens + rows[1].CompletionTokens) // day 1, already at the new cost...
		rows[1].PriceVersion = "v2"                                                  // ...and version: unchanged by Reprice
		for i := 0; i < len(rows); i += 200 {
			insertRows(t, s, rows[i:min(i+200, len(rows))])
		}
		price := func(r usage.Row) (int64, string) { return 2 * (r.PromptTokens + r.CompletionTokens), "v2" }

		var wantChanged int64
		repriced := make([]usage.Row, len(rows))
		for i, r := range rows {
			if r.Day >= ledgerDay(1) {
				c, v := price(r)
				if c != r.CostMicroUSD || v != r.PriceVersion {
					wantChanged++
				}
				r.CostMicroUSD, r.PriceVersion = c, v
			}
			repriced[i] = r
		}
		n, err := s.Reprice(ctx, ledgerDay(1), price)
		if err != nil {
			t.Fatalf("Reprice: %v", err)
		}
		if n != wantChanged || n != 974 {
			t.Errorf("Reprice changed %d rows, want %d (974)", n, wantChanged)
		}
		got := storedRows(t, s)
		sort.Slice(got, func(i, j int) bool { return got[i].RequestID < got[j].RequestID })
		if !reflect.DeepEqual(got, repriced) {
			t.Errorf("rows after Reprice differ from the expected costs")
		}
		// Day 0 keeps its costs; days 1..3 sum the new ones.
		for _, q := range []usage.Query{
			{From: ledgerDay(0), To: ledgerDay(0), GroupBy: usage.ByUser},
			{From: ledgerDay(1), To: ledgerDay(3), GroupBy: usage.ByUser},
			{From: ledgerDay(0), To: ledgerDay(3), GroupBy: usage.ByModel},
		} {
			if g, w := dailyOf(t, s, q), wantGroups(repriced, q); !reflect.DeepEqual(g, w) {
				t.Errorf("Daily(%+v) after Reprice:\n got %+v\nwant %+v", q, g, w)
			}
		}
		if sp, _ := s.Spend(ctx, ledgerDay(2), "u1"); sp.MicroUSD == 0 {
			t.Errorf("Spend after Reprice = %+v, want the new costs", sp)
		}
		if n, err := s.Reprice(ctx, ledgerDay(1), price); err != nil || n != 0 {
			t.Errorf("Reprice again = %d, %v; want 0 changed", n, err)
		}
		if _, err := s.Reprice(ctx, "1 March", price); !errors.Is(err, usage.ErrInvalid) {
			t.Errorf("Reprice(bad day) = %v, want ErrInvalid", err)
		}
	})
}

func TestStoreOpenTwice(t *testing.T) {
	forEachLedger(t, func(t *testing.T, dsn string, s usage.Store) {
		rows := ledgerFixture()
		insertRows(t, s, rows[:10])
		// A second Open of a migrated database, while the first is open,
		// migrates nothing and sees the same ledger.
		s2 := openLedger(t, dsn)
		insertRows(t, s2, rows[10:])
		if got := storedRows(t, s); len(got) != len(rows) {
			t.Errorf("first store sees %d rows, want %d", len(got), len(rows))
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		s3, err := usage.Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("third Open: %v", err)
		}
		defer s3.Close()
		if err := s3.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if got := storedRows(t, s3); !reflect.DeepEqual(got, rowsByTime(rows)) {
			t.Errorf("reopened ledger has %d rows, want the %d inserted", len(got), len(rows))
		}
	})
}

func TestStoreNormalizesRows(t *testing.T) {
	forEachLedger(t, func(t *testing.T, _ string, s usage.Store) {
		r := usage.Row{
			RequestID: "req-odd",
			Time:      time.Date(2031, 3, 5, 1, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)), // 2031-03-04 in UTC
			Feature:   "bad\x00utf8\xff",
			Model:     strings.Repeat("é", 200), // 400 bytes
			LatencyMS: math.NaN(),
			TTFTMS:    math.Inf(1),
			Status:    200,
		}
		insertRows(t, s, []usage.Row{r})
		got := storedRows(t, s)
		if len(got) != 1 {
			t.Fatalf("%d rows, want 1", len(got))
		}
		g := got[0]
		if g.User != "anonymous" || g.Day != "2031-03-04" || !g.Time.Equal(r.Time) || g.Time.Location() != time.UTC {
			t.Errorf("user %q day %q time %v; want anonymous, the UTC day 2031-03-04, the same instant in UTC", g.User, g.Day, g.Time)
		}
		if g.Feature != "badutf8\uFFFD" || g.Model != strings.Repeat("é", 127) || g.LatencyMS != 0 || g.TTFTMS != 0 {
			t.Errorf("feature %q, model of %d bytes, latency %v, ttft %v; want cleaned text, 254 bytes (a rune boundary), zeros",
				g.Feature, len(g.Model), g.LatencyMS, g.TTFTMS)
		}
		if sp, err := s.Spend(context.Background(), "2031-03-04", "anonymous"); err != nil || sp.Tokens != 0 {
			t.Errorf("Spend(anonymous) = %+v, %v", sp, err)
		}
		if g := dailyOf(t, s, usage.Query{From: "2031-03-04", To: "2031-03-04", GroupBy: usage.ByModel}); len(g) != 1 || g[0].Key != got[0].Model || g[0].Requests != 1 {
			t.Errorf("rollup by model = %+v, want one request under the cut name", g)
		}
		for _, bad := range []usage.Row{
			{Time: ledgerBase},                    // no request id
			{RequestID: "no-time"},                // no time
			{RequestID: "\x00", Time: ledgerBase}, // nothing left of the id once cleaned
			{RequestID: "x", Time: ledgerBase, Day: "4/3/2031"},
		} {
			err := s.Insert(context.Background(), []usage.Row{ledgerRow(3000, 0, "a", "f", "m"), bad})
			if !errors.Is(err, usage.ErrInvalid) {
				t.Errorf("Insert(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		if got := storedRows(t, s); len(got) != 1 {
			t.Errorf("a refused batch wrote rows: %d rows, want 1", len(got))
		}
	})
}

func TestStoreDriftState(t *testing.T) {
	forEachLedger(t, func(t *testing.T, dsn string, s usage.Store) {
		ctx := context.Background()
		load := func(s usage.Store, model string) (string, bool) {
			t.Helper()
			b, found, err := s.LoadDriftState(ctx, model)
			if err != nil {
				t.Fatalf("LoadDriftState(%.20q): %v", model, err)
			}
			return string(b), found
		}
		if b, found := load(s, "qwen3-0.6b"); found || b != "" {
			t.Fatalf("before any save: %q, found %v", b, found)
		}
		first := `{"resolution":60000000000,"buckets":{"1":{"requests":3}}}`
		// a large history: a day of buckets is hundreds of kB
		second := `{"resolution":60000000000,"buckets":{"2":{"requests":5,"note":"` + strings.Repeat("é", 200_000) + `"}}}`
		long := strings.Repeat("m", 300) // cut to 255 bytes on both save and load
		for _, save := range []struct{ model, state string }{
			{"qwen3-0.6b", first}, {"qwen3-8b", "{}"}, {long, "{}"}, {"qwen3-0.6b", second},
		} {
			if err := s.SaveDriftState(ctx, save.model, []byte(save.state)); err != nil {
				t.Fatalf("SaveDriftState(%.20q): %v", save.model, err)
			}
		}
		if b, found := load(s, "qwen3-0.6b"); !found || b != second {
			t.Errorf("after the upsert: %d bytes, found %v; want the second state (%d bytes)", len(b), found, len(second))
		}
		if b, found := load(s, "qwen3-8b"); !found || b != "{}" {
			t.Errorf("another model's state: %q, found %v", b, found)
		}
		if b, found := load(s, long); !found || b != "{}" {
			t.Errorf("a model name over 255 bytes: %q, found %v", b, found)
		}
		if _, found := load(s, long[:255]); !found {
			t.Errorf("a model name over 255 bytes is not stored under its first 255")
		}
		for _, bad := range []string{"{\"a\":\"\x00\"}", "\xff{}"} {
			if err := s.SaveDriftState(ctx, "qwen3-8b", []byte(bad)); !errors.Is(err, usage.ErrInvalid) {
				t.Errorf("SaveDriftState(%q) = %v, want ErrInvalid", bad, err)
			}
		}
		// another connection (a restarted daemon) reads what was saved
		if b, found := load(openLedger(t, dsn), "qwen3-0.6b"); !found || b != second {
			t.Errorf("reopened ledger: %d bytes, found %v; want the second state", len(b), found)
		}
	})
}
