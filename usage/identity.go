package usage

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIDLength bounds user, end user, feature and session identifiers
// (bytes).
const MaxIDLength = 128

// Anonymous is the user of a request that names none.
const Anonymous = "anonymous"

// CheckID accepts an identifier of 1 to MaxIDLength bytes of printable,
// non-space-only UTF-8; field names it in the error.
func CheckID(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("field %q: empty", field)
	case len(v) > MaxIDLength:
		return fmt.Errorf("field %q: longer than %d bytes", field, MaxIDLength)
	case !utf8.ValidString(v):
		return fmt.Errorf("field %q: not valid UTF-8", field)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("field %q: contains a non-printable character %U", field, r)
		}
	}
	return nil
}

// Identity says who made a request and for what. User is never empty.
type Identity struct {
	User    string // the key's user, else the one the request names, else Anonymous
	EndUser string // the application's end user when a key names the caller
	Feature string // X-Qwend-Feature or metadata.feature, else the endpoint
	Session string // X-Qwend-Session
	Admin   bool   // the key may read every user's usage
	KeyUSD  float64
	KeyTok  int64
	Keyed   bool // authenticated by an API key
}
