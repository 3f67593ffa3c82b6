// Package usagetest gives tests a fresh ledger database of each kind: a
// SQLite file, and a PostgreSQL database on the server named by
// QWEND_TEST_POSTGRES (scripts/with-postgres.sh starts one and sets it).
package usagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// SQLite is a ledger file path in a fresh directory.
func SQLite(t testing.TB) string {
	return filepath.Join(t.TempDir(), "ledger.db")
}

// Postgres is the URL of a fresh database, dropped when the test ends; the
// test is skipped when QWEND_TEST_POSTGRES is not set.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("QWEND_TEST_POSTGRES")
	if base == "" {
		t.Skip("QWEND_TEST_POSTGRES is not set; run under scripts/with-postgres.sh")
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "qwend_t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Each runs test as a subtest against a fresh ledger of each kind.
func Each(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, Postgres(t)) })
}
