package usage

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var ledgerMigrations embed.FS

const (
	// ledgerDayLayout is the form of Row.Day and of every day argument.
	ledgerDayLayout = "2006-01-02"
	// ledgerAnonymous is the user of a row recorded without one.
	ledgerAnonymous = "anonymous"
	// ledgerMigrationTable is goose's version table, named so that the
	// ledger can share a PostgreSQL database with other goose users.
	ledgerMigrationTable = "qwend_usage_migrations"
	// ledgerMigrationLockID is the PostgreSQL advisory lock held while
	// migrating: crc32("qwend usage ledger").
	ledgerMigrationLockID int64 = 0x345cca75
	// sqliteBusyTimeoutMS is how long a SQLite statement waits for another
	// connection's write lock before failing, in ms.
	sqliteBusyTimeoutMS = 10000
	// repricePage is how many rows Reprice reads at a time.
	repricePage = 500
	// ledgerMaxID is the longest request, response or feedback id stored,
	// in bytes; ledgerMaxLabel the longest user, feature or model (longer
	// ones are cut at a rune boundary). Both keep index entries well under
	// PostgreSQL's btree limit (about 2.7 kB).
	ledgerMaxID    = 255
	ledgerMaxLabel = 255
)

// sqlStore is the Store on database/sql; the two dialects differ only in
// their driver, placeholders and migration directory.
type sqlStore struct {
	db       *sql.DB
	postgres bool
}

func openSQLite(ctx context.Context, dsn string) (Store, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%w: empty ledger path", ErrInvalid)
	}
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path != "" && path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("usage: ledger directory: %w", err)
		}
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	// Every transaction takes the write lock at BEGIN (_txlock=immediate):
	// a deferred one that reads and then writes could fail with SQLITE_BUSY
	// instead of waiting out the busy timeout.
	full := dsn + sep + "_pragma=busy_timeout(" + strconv.Itoa(sqliteBusyTimeoutMS) + ")" +
		"&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", full)
	if err != nil {
		return nil, fmt.Errorf("usage: open sqlite %s: %w", path, err)
	}
	if path == ":memory:" || strings.Contains(dsn, "mode=memory") {
		db.SetMaxOpenConns(1) // each connection would have its own database
	}
	s := &sqlStore{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage: migrate sqlite %s: %w", path, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("usage: open postgres: %w", err)
	}
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &sqlStore{db: db, postgres: true}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage: connect postgres: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("usage: migrate postgres: %w", err)
	}
	return s, nil
}

// migrate applies the embedded migrations that the database lacks.
func (s *sqlStore) migrate(ctx context.Context) error {
	dialect, dir := goose.DialectSQLite3, "migrations/sqlite"
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(ledgerMigrationTable),
	}
	if s.postgres {
		dialect, dir = goose.DialectPostgres, "migrations/postgres"
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(ledgerMigrationLockID),
			lock.WithLockTimeout(1, 300), // poll every 1 s, up to 5 min
		)
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(ledgerMigrations, dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(dialect, s.db, fsys, opts...)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// bind rewrites the ? placeholders of query into PostgreSQL's $1, $2...
// The queries in this file hold no ? other than placeholders.
func (s *sqlStore) bind(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

const requestColumns = `request_id, response_id, time_unix_nano, day, user_id, end_user, feature,
	session, model, endpoint, prompt_tokens, cached_tokens, completion_tokens, latency_ms, ttft_ms,
	status, error_type, cost_micro_usd, price_version, compute_seconds, trace_id`

const insertRequestSQL = `INSERT INTO requests (` + requestColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (request_id) DO NOTHING`

const upsertDailySQL = `INSERT INTO daily (day, user_id, feature, model,
		requests, errors, prompt_tokens, cached_tokens, completion_tokens, cost_micro_usd)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (day, user_id, feature, model) DO UPDATE SET
		requests = daily.requests + excluded.requests,
		errors = daily.errors + excluded.errors,
		prompt_tokens = daily.prompt_tokens + excluded.prompt_tokens,
		cached_tokens = daily.cached_tokens + excluded.cached_tokens,
		completion_tokens = daily.completion_tokens + excluded.completion_tokens,
		cost_micro_usd = daily.cost_micro_usd + excluded.cost_micro_usd`

func requestArgs(r *Row) []any {
	return []any{r.RequestID, r.ResponseID, r.Time.UnixNano(), r.Day, r.User, r.EndUser, r.Feature,
		r.Session, r.Model, r.Endpoint, r.PromptTokens, r.CachedTokens, r.CompletionTokens, r.LatencyMS, r.TTFTMS,
		r.Status, r.ErrorType, r.CostMicroUSD, r.PriceVersion, r.ComputeSeconds, r.TraceID}
}

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(sc rowScanner) (Row, error) {
	var r Row
	var ns int64
	err := sc.Scan(&r.RequestID, &r.ResponseID, &ns, &r.Day, &r.User, &r.EndUser, &r.Feature,
		&r.Session, &r.Model, &r.Endpoint, &r.PromptTokens, &r.CachedTokens, &r.CompletionTokens, &r.LatencyMS, &r.TTFTMS,
		&r.Status, &r.ErrorType, &r.CostMicroUSD, &r.PriceVersion, &r.ComputeSeconds, &r.TraceID)
	r.Time = time.Unix(0, ns).UTC()
	return r, err
}

// ledgerText is s as both databases store it: valid UTF-8 without NUL
// (PostgreSQL refuses both in text columns).
func ledgerText(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// ledgerFloat is f, or 0 for NaN and infinities (which SQLite stores as NULL
// and JSON cannot encode).
func ledgerFloat(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// ledgerTimeOK reports whether t has a Unix-nanosecond form (years 1678 to
// 2262) and is not zero.
func ledgerTimeOK(t time.Time) bool {
	return !t.IsZero() && time.Unix(0, t.UnixNano()).Equal(t)
}

// ledgerNanos is t in Unix nanoseconds, clamped to the int64 range; the
// zero time is the earliest.
func ledgerNanos(t time.Time) int64 {
	switch {
	case t.IsZero() || t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func checkDay(day string) error {
	if _, err := time.Parse(ledgerDayLayout, day); err != nil || len(day) != len(ledgerDayLayout) {
		return fmt.Errorf("%w: day %q is not YYYY-MM-DD", ErrInvalid, day)
	}
	return nil
}

// ledgerLabel is ledgerText(s) cut to at most ledgerMaxLabel bytes at a
// rune boundary.
func ledgerLabel(s string) string {
	s = ledgerText(s)
	if len(s) <= ledgerMaxLabel {
		return s
	}
	n := ledgerMaxLabel
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// normalizeRow is r as the ledger stores it: Time in UTC, Day derived from
// Time when empty, User "anonymous" when empty, text cleaned (see
// ledgerText), User, Feature and Model cut to 255 bytes, non-finite floats
// zeroed. It fails for a row without RequestID, with a RequestID or
// ResponseID over 255 bytes, without a representable Time, or with a
// malformed Day.
func normalizeRow(r Row) (Row, error) {
	for _, p := range []*string{&r.RequestID, &r.ResponseID, &r.Day, &r.EndUser, &r.Session, &r.Endpoint,
		&r.ErrorType, &r.PriceVersion, &r.TraceID} {
		*p = ledgerText(*p)
	}
	r.User, r.Feature, r.Model = ledgerLabel(r.User), ledgerLabel(r.Feature), ledgerLabel(r.Model)
	if r.RequestID == "" {
		return r, fmt.Errorf("%w: row without request id", ErrInvalid)
	}
	if len(r.RequestID) > ledgerMaxID || len(r.ResponseID) > ledgerMaxID {
		return r, fmt.Errorf("%w: row %.32q...: request or response id over %d bytes", ErrInvalid, r.RequestID, ledgerMaxID)
	}
	if !ledgerTimeOK(r.Time) {
		return r, fmt.Errorf("%w: row %s: time %v out of range", ErrInvalid, r.RequestID, r.Time)
	}
	r.Time = r.Time.UTC()
	if r.Day == "" {
		r.Day = r.Time.Format(ledgerDayLayout)
	} else if err := checkDay(r.Day); err != nil {
		return r, fmt.Errorf("row %s: %w", r.RequestID, err)
	}
	if r.User == "" {
		r.User = ledgerAnonymous
	}
	r.LatencyMS = ledgerFloat(r.LatencyMS)
	r.TTFTMS = ledgerFloat(r.TTFTMS)
	r.ComputeSeconds = ledgerFloat(r.ComputeSeconds)
	return r, nil
}

type dailyKey struct{ day, user, feature, model string }

func (s *sqlStore) Insert(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	clean := make([]Row, len(rows))
	for i := range rows {
		r, err := normalizeRow(rows[i])
		if err != nil {
			return err
		}
		clean[i] = r
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage: insert: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, s.bind(insertRequestSQL))
	if err != nil {
		return fmt.Errorf("usage: insert: %w", err)
	}
	defer stmt.Close()
	sums := make(map[dailyKey]*Group)
	for i := range clean {
		r := &clean[i]
		res, err := stmt.ExecContext(ctx, requestArgs(r)...)
		if err != nil {
			return fmt.Errorf("usage: insert row %s: %w", r.RequestID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("usage: insert row %s: %w", r.RequestID, err)
		}
		if n == 0 {
			continue // already in the ledger
		}
		k := dailyKey{r.Day, r.User, r.Feature, r.Model}
		g := sums[k]
		if g == nil {
			g = &Group{}
			sums[k] = g
		}
		g.Requests++
		if r.Failed() {
			g.Errors++
		}
		g.PromptTokens += r.PromptTokens
		g.CachedTokens += r.CachedTokens
		g.CompletionTokens += r.CompletionTokens
		g.CostMicroUSD += r.CostMicroUSD
	}
	// Upsert the rollup in key order, so that concurrent writers to one
	// PostgreSQL database lock its rows in the same order.
	keys := make([]dailyKey, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.day != b.day {
			return a.day < b.day
		}
		if a.user != b.user {
			return a.user < b.user
		}
		if a.feature != b.feature {
			return a.feature < b.feature
		}
		return a.model < b.model
	})
	upsert := s.bind(upsertDailySQL)
	for _, k := range keys {
		g := sums[k]
		if _, err := tx.ExecContext(ctx, upsert, k.day, k.user, k.feature, k.model,
			g.Requests, g.Errors, g.PromptTokens, g.CachedTokens, g.CompletionTokens, g.CostMicroUSD); err != nil {
			return fmt.Errorf("usage: update rollup: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("usage: insert: commit: %w", err)
	}
	return nil
}

// groupColumns maps a GroupBy to its rollup column; only these names are
// ever spliced into SQL.
var groupColumns = map[GroupBy]string{ByUser: "user_id", ByFeature: "feature", ByModel: "model"}

func (s *sqlStore) Daily(ctx context.Context, q Query) ([]Group, error) {
	if err := checkDay(q.From); err != nil {
		return nil, err
	}
	if err := checkDay(q.To); err != nil {
		return nil, err
	}
	by := q.GroupBy
	if by == "" {
		by = ByUser
	}
	col, ok := groupColumns[by]
	if !ok {
		return nil, fmt.Errorf("%w: group by %q (want user, feature or model)", ErrInvalid, q.GroupBy)
	}
	query := `SELECT ` + col + `, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT),
		CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(cached_tokens) AS BIGINT),
		CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(cost_micro_usd) AS BIGINT)
		FROM daily WHERE day >= ? AND day <= ?`
	args := []any{q.From, q.To}
	if q.User != "" {
		query += ` AND user_id = ?`
		args = append(args, ledgerLabel(q.User))
	}
	query += ` GROUP BY ` + col
	rows, err := s.db.QueryContext(ctx, s.bind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("usage: daily: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		if err := rows.Scan(&g.Key, &g.Requests, &g.Errors, &g.PromptTokens, &g.CachedTokens,
			&g.CompletionTokens, &g.CostMicroUSD); err != nil {
			return nil, fmt.Errorf("usage: daily: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage: daily: %w", err)
	}
	// Sorted here rather than by ORDER BY: PostgreSQL would use the
	// database's collation, and both stores must agree.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *sqlStore) Spend(ctx context.Context, day, user string) (Spend, error) {
	if err := checkDay(day); err != nil {
		return Spend{}, err
	}
	var sp Spend
	err := s.db.QueryRowContext(ctx, s.bind(`SELECT CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT),
		CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT)
		FROM daily WHERE day = ? AND user_id = ?`), day, ledgerLabel(user)).Scan(&sp.MicroUSD, &sp.Tokens)
	if err != nil {
		return Spend{}, fmt.Errorf("usage: spend: %w", err)
	}
	return sp, nil
}

func (s *sqlStore) LookupRequest(ctx context.Context, id string) (Row, bool, error) {
	if id == "" {
		return Row{}, false, nil
	}
	id = ledgerText(id)
	for _, query := range []string{
		`SELECT ` + requestColumns + ` FROM requests WHERE request_id = ?`,
		// "response_id <> ''" matches the partial index's predicate.
		`SELECT ` + requestColumns + ` FROM requests WHERE response_id = ? AND response_id <> ''
			ORDER BY time_unix_nano, request_id LIMIT 1`,
	} {
		r, err := scanRequest(s.db.QueryRowContext(ctx, s.bind(query), id))
		if err == nil {
			return r, true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Row{}, false, fmt.Errorf("usage: lookup %q: %w", id, err)
		}
	}
	return Row{}, false, nil
}

func (s *sqlStore) AddFeedback(ctx context.Context, f Feedback) (bool, error) {
	if f.ID == "" || len(f.ID) > ledgerMaxID || len(f.RequestID) > ledgerMaxID {
		return false, fmt.Errorf("%w: feedback id %.32q or its request id empty or over %d bytes", ErrInvalid, f.ID, ledgerMaxID)
	}
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	if !ledgerTimeOK(f.Time) {
		return false, fmt.Errorf("%w: feedback %s: time %v out of range", ErrInvalid, f.ID, f.Time)
	}
	var value sql.NullFloat64
	if f.Value != nil {
		value = sql.NullFloat64{Float64: ledgerFloat(*f.Value), Valid: true}
	}
	res, err := s.db.ExecContext(ctx, s.bind(`INSERT INTO feedback
		(id, request_id, score, label, value, comment, user_id, feature, time_unix_nano)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		ledgerText(f.ID), ledgerText(f.RequestID), f.Score, ledgerText(f.Label), value,
		ledgerText(f.Comment), ledgerLabel(f.User), ledgerLabel(f.Feature), f.Time.UnixNano())
	if err != nil {
		return false, fmt.Errorf("usage: add feedback %s: %w", f.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("usage: add feedback %s: %w", f.ID, err)
	}
	return n == 1, nil
}

func (s *sqlStore) FeedbackCounts(ctx context.Context, since time.Time) (map[string]int64, error) {
	from := ledgerNanos(since)

	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT label, COUNT(*) FROM feedback
		WHERE time_unix_nano >= ? GROUP BY label`), from)
	if err != nil {
		return nil, fmt.Errorf("usage: feedback counts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int64)
	for rows.Next() {
		var label string
		var n int64
		if err := rows.Scan(&label, &n); err != nil {
			return nil, fmt.Errorf("usage: feedback counts: %w", err)
		}
		out[label] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage: feedback counts: %w", err)
	}
	return out, nil
}

func (s *sqlStore) Reprice(ctx context.Context, fromDay string, cost func(Row) (int64, string)) (int64, error) {
	if err := checkDay(fromDay); err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("usage: reprice: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	page := s.bind(`SELECT ` + requestColumns + ` FROM requests
		WHERE day >= ? AND (day > ? OR (day = ? AND request_id > ?))
		ORDER BY day, request_id LIMIT ` + strconv.Itoa(repricePage))
	update := s.bind(`UPDATE requests SET cost_micro_usd = ?, price_version = ? WHERE request_id = ?`)
	var changed int64
	lastDay, lastID := fromDay, ""
	for {
		rows, err := tx.QueryContext(ctx, page, fromDay, lastDay, lastDay, lastID)
		if err != nil {
			return 0, fmt.Errorf("usage: reprice: %w", err)
		}
		var batch []Row
		for rows.Next() {
			r, err := scanRequest(rows)
			if err != nil {
				rows.Close()
				return 0, fmt.Errorf("usage: reprice: %w", err)
			}
			batch = append(batch, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, fmt.Errorf("usage: reprice: %w", err)
		}
		for _, r := range batch {
			micro, version := cost(r)
			version = ledgerText(version)
			if micro == r.CostMicroUSD && version == r.PriceVersion {
				continue
			}
			if _, err := tx.ExecContext(ctx, update, micro, version, r.RequestID); err != nil {
				return 0, fmt.Errorf("usage: reprice row %s: %w", r.RequestID, err)
			}
			changed++
		}
		if len(batch) < repricePage {
			break
		}
		last := batch[len(batch)-1]
		lastDay, lastID = last.Day, last.RequestID
	}
	if _, err := tx.ExecContext(ctx, s.bind(`UPDATE daily SET cost_micro_usd = COALESCE((
			SELECT SUM(r.cost_micro_usd) FROM requests r WHERE r.day = daily.day
			AND r.user_id = daily.user_id AND r.feature = daily.feature AND r.model = daily.model), 0)
		WHERE day >= ?`), fromDay); err != nil {
		return 0, fmt.Errorf("usage: reprice rollup: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("usage: reprice: commit: %w", err)
	}
	return changed, nil
}

func (s *sqlStore) Rows(ctx context.Context, from, to string) ([]Row, error) {
	if err := checkDay(from); err != nil {
		return nil, err
	}
	if err := checkDay(to); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.bind(`SELECT `+requestColumns+` FROM requests
		WHERE day >= ? AND day <= ? ORDER BY time_unix_nano, request_id`), from, to)
	if err != nil {
		return nil, fmt.Errorf("usage: rows: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("usage: rows: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage: rows: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SaveDriftState(ctx context.Context, model string, state []byte) error {
	model = ledgerLabel(model)
	if !utf8.Valid(state) || bytes.IndexByte(state, 0) >= 0 {
		return fmt.Errorf("%w: drift state of %q is not UTF-8 text without NUL", ErrInvalid, model)
	}
	if _, err := s.db.ExecContext(ctx, s.bind(`INSERT INTO drift_state (model, saved_unix_nano, state)
		VALUES (?, ?, ?) ON CONFLICT (model) DO UPDATE SET
			saved_unix_nano = excluded.saved_unix_nano, state = excluded.state`),
		model, time.Now().UnixNano(), string(state)); err != nil {
		return fmt.Errorf("usage: save drift state of %q: %w", model, err)
	}
	return nil
}

func (s *sqlStore) LoadDriftState(ctx context.Context, model string) ([]byte, bool, error) {
	model = ledgerLabel(model)
	var state string
	err := s.db.QueryRowContext(ctx, s.bind(`SELECT state FROM drift_state WHERE model = ?`), model).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("usage: load drift state of %q: %w", model, err)
	}
	return []byte(state), true, nil
}

func (s *sqlStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *sqlStore) Close() error { return s.db.Close() }
