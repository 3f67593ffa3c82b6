package usage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysAddAndLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "keys.yaml")
	alice, err := AddKey(path, Key{User: "alice", DailyUSD: 2.5})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := AddKey(path, Key{User: "ops", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(alice, KeyPrefix) || alice == admin {
		t.Fatalf("keys %q %q", alice, admin)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), alice) || strings.Contains(string(b), admin) {
		t.Fatal("the keys file holds a key itself")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("keys file mode %v", st.Mode().Perm())
	}
	f, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	ring := NewKeyring(f)
	if k, ok := ring.Lookup(alice); !ok || k.User != "alice" || k.DailyUSD != 2.5 || k.Admin {
		t.Errorf("alice: %+v %v", k, ok)
	}
	if k, ok := ring.Lookup(admin); !ok || !k.Admin || k.User != "ops" {
		t.Errorf("admin: %+v %v", k, ok)
	}
	for _, bad := range []string{"", alice + "x", alice[:len(alice)-1], strings.ToUpper(alice), f.Keys[0].SHA256} {
		if _, ok := ring.Lookup(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLoadKeysRejects(t *testing.T) {
	dir := t.TempDir()
	hash := strings.Repeat("ab", 32)
	for name, content := range map[string]string{
		"not yaml":       "keys: [",
		"short hash":     "keys:\n  - user: a\n    sha256: abcd\n",
		"no user":        "keys:\n  - sha256: " + hash + "\n",
		"bad user":       "keys:\n  - user: \"a\\tb\"\n    sha256: " + hash + "\n",
		"negative":       "keys:\n  - user: a\n    sha256: " + hash + "\n    daily_usd: -1\n",
		"same key twice": "keys:\n  - user: a\n    sha256: " + hash + "\n  - user: b\n    sha256: " + hash + "\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := LoadKeys(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"alice", "user@example.com", "Zoë", "team/a b"} {
		if err := CheckID("user", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxIDLength+1), "a\nb", "a\x00b", "bad\xff"} {
		if err := CheckID("user", bad); err == nil || !strings.Contains(err.Error(), `"user"`) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// A user's budgets are the tightest any of their keys sets, whichever key
// a request presents.
func TestKeyringBudgetsArePerUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	tight, err := AddKey(path, Key{User: "alice", DailyTokens: 200})
	if err != nil {
		t.Fatal(err)
	}
	loose, err := AddKey(path, Key{User: "alice", DailyUSD: 3})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := AddKey(path, Key{User: "bob"})
	f, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	ring := NewKeyring(f)
	for _, secret := range []string{tight, loose} {
		if k, ok := ring.Lookup(secret); !ok || k.DailyTokens != 200 || k.DailyUSD != 3 {
			t.Errorf("alice's key: %+v", k)
		}
	}
	if k, _ := ring.Lookup(other); k.DailyTokens != 0 || k.DailyUSD != 0 {
		t.Errorf("bob's key: %+v", k)
	}
}
