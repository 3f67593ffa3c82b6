package usage

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// Key is one API key as stored in the keys file: never the key itself,
// only its SHA-256.
type Key struct {
	User        string    `yaml:"user"`
	SHA256      string    `yaml:"sha256"`                 // hex SHA-256 of the key
	Admin       bool      `yaml:"admin,omitempty"`        // sees every user's usage
	DailyUSD    float64   `yaml:"daily_usd,omitempty"`    // 0: the server's default
	DailyTokens int64     `yaml:"daily_tokens,omitempty"` // 0: the server's default
	Created     time.Time `yaml:"created"`
}

// KeysFile is the YAML file `qwend keys add` writes and `--keys` reads:
//
//	keys:
//	  - user: alice
//	    sha256: 9f86d0...   # hex SHA-256 of the key
//	    admin: false
//	    daily_usd: 5        # optional
//	    daily_tokens: 200000 # optional
//	    created: 2026-11-30T12:00:00Z
type KeysFile struct {
	Keys []Key `yaml:"keys"`
}

// KeyPrefix starts every key qwend makes.
const KeyPrefix = "qwend-"

// LoadKeys reads and checks a keys file: every entry needs a valid user id
// and a 64-digit hex hash, and no hash may appear twice.
func LoadKeys(path string) (*KeysFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f KeysFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, k := range f.Keys {
		if err := CheckID("user", k.User); err != nil {
			return nil, fmt.Errorf("%s: keys[%d]: %w", path, i, err)
		}
		if h, err := hex.DecodeString(k.SHA256); err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%s: keys[%d]: sha256 is not 64 hex digits", path, i)
		}
		if k.DailyUSD < 0 || k.DailyTokens < 0 {
			return nil, fmt.Errorf("%s: keys[%d]: negative budget", path, i)
		}
		if seen[k.SHA256] {
			return nil, fmt.Errorf("%s: keys[%d]: the same key twice", path, i)
		}
		seen[k.SHA256] = true
	}
	return &f, nil
}

// AddKey makes a new random key for user, appends its hash to the keys
// file at path (created with mode 0600 when missing) and returns the key,
// which is not stored anywhere and cannot be shown again.
func AddKey(path string, k Key) (string, error) {
	if err := CheckID("user", k.User); err != nil {
		return "", err
	}
	if k.DailyUSD < 0 || k.DailyTokens < 0 {
		return "", errors.New("budgets cannot be negative")
	}
	f := &KeysFile{}
	if _, err := os.Stat(path); err == nil {
		if f, err = LoadKeys(path); err != nil {
			return "", err
		}
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k.SHA256 = hashKey(key)
	if k.Created.IsZero() {
		k.Created = time.Now().UTC().Truncate(time.Second)
	}
	f.Keys = append(f.Keys, k)
	b, err := yaml.Marshal(f)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", err
	}
	return key, os.Rename(tmp, path)
}

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Keyring answers which key, if any, a presented secret is.
type Keyring struct {
	keys   []Key
	hashes [][]byte
}

// NewKeyring holds the keys of f.
//
// A user's budgets are the tightest that any of their keys sets, whichever
// key a request presents: budgets are per user, not per key.
func NewKeyring(f *KeysFile) *Keyring {
	tightest := map[string]Key{}
	for _, k := range f.Keys {
		t := tightest[k.User]
		if k.DailyUSD > 0 && (t.DailyUSD == 0 || k.DailyUSD < t.DailyUSD) {
			t.DailyUSD = k.DailyUSD
		}
		if k.DailyTokens > 0 && (t.DailyTokens == 0 || k.DailyTokens < t.DailyTokens) {
			t.DailyTokens = k.DailyTokens
		}
		tightest[k.User] = t
	}
	r := &Keyring{}
	for _, k := range f.Keys {
		h, _ := hex.DecodeString(k.SHA256)
		r.hashes = append(r.hashes, h)
		k.DailyUSD, k.DailyTokens = tightest[k.User].DailyUSD, tightest[k.User].DailyTokens
		r.keys = append(r.keys, k)
	}
	return r
}

// Lookup returns the key whose hash is the SHA-256 of secret. Every stored
// hash is compared in constant time, whatever matches, so the time taken
// says nothing about which key or how much of it matched.
func (r *Keyring) Lookup(secret string) (Key, bool) {
	h := sha256.Sum256([]byte(secret))
	found := -1
	for i, stored := range r.hashes {
		if subtle.ConstantTimeCompare(h[:], stored) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Key{}, false
	}
	return r.keys[found], true
}

// Len is the number of keys.
func (r *Keyring) Len() int { return len(r.keys) }
