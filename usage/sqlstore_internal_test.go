package usage

import (
	"context"
	"path/filepath"
	"testing"
	"time"
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
	if err := db.QueryRow("SELECT MAX(version_id) FROM " + ledgerMigrationTable).Scan(&version); err != nil || version != 1 {
		t.Errorf("migration version = %d, %v; want 1", version, err)
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
