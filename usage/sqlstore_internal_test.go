package usage

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
)

var ledgerTestTime = time.Date(2031, 3, 4, 10, 0, 0, 0, time.UTC)

func TestSQLiteSettings(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.(*sqlStore).db
	var mode string
	var busy int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := db.QueryRow("PRAGMA busy_timeout").Scan(&busy); err != nil || busy != sqliteBusyTimeoutMS {
		t.Errorf("busy_timeout = %d, %v; want %d", busy, err, sqliteBusyTimeoutMS)
	}
	var version int64
	if err := db.QueryRow("SELECT MAX(version_id) FROM " + ledgerMigrationTable).Scan(&version); err != nil || version != 2 {
		t.Errorf("migration version = %d, %v; want 2", version, err)
	}
}

// A ledger made before the drift_state table is brought up to date by
// Open, its rows kept.
func TestSQLiteMigratesVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "usage.db")
	v1, err := fs.ReadFile(ledgerMigrations, "migrations/sqlite/00001_ledger.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fstest.MapFS{"00001_ledger.sql": {Data: v1}},
		goose.WithDisableGlobalRegistry(true), goose.WithTableName(ledgerMigrationTable))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO requests (request_id, time_unix_nano, day, user_id, status)
		VALUES ('r1', 1, '1970-01-01', 'u', 200)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok, err := st.LookupRequest(ctx, "r1"); err != nil || !ok {
		t.Errorf("the version 1 row: found %v, %v", ok, err)
	}
	if err := st.SaveDriftState(ctx, "m", []byte("{}")); err != nil {
		t.Errorf("SaveDriftState after the migration: %v", err)
	}
}

func TestSQLiteInMemory(t *testing.T) {
	st, err := Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows := []Row{{RequestID: "r1", Time: ledgerTestTime, Status: 200}}
	if err := st.Insert(context.Background(), rows); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if _, ok, err := st.LookupRequest(context.Background(), "r1"); err != nil || !ok {
		t.Errorf("LookupRequest = %v, %v; want found", ok, err)
	}
}

func TestBind(t *testing.T) {
	q := "SELECT a FROM t WHERE b = ? AND c IN (?, ?)"
	if got := (&sqlStore{}).bind(q); got != q {
		t.Errorf("sqlite bind = %q, want it unchanged", got)
	}
	if got, want := (&sqlStore{postgres: true}).bind(q), "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"; got != want {
		t.Errorf("postgres bind = %q, want %q", got, want)
	}
}
