package api

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"strings"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// DecodeBody reads one JSON object of at most limit bytes into v. A body
// over the limit is a 413; anything else wrong is a 400 naming the field at
// fault.
func DecodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *Error {
	if e := checkJSONContentType(r); e != nil {
		return e
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	// one allocation of the declared size, not io.ReadAll's doublings (a
	// 7 MB body would take up to twice that)
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(body)
	data := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Kind: KindInvalid, Type: "invalid_request_error", Message: fmt.Sprintf("request body over %d bytes", limit)}
		}
		return BadRequest("read body: %v", err)
	}
	return DecodeJSON(data, v)
}

// checkJSONContentType refuses a body that is not declared JSON with 415:
// a web page can post text/plain, form or multipart bodies to a daemon on
// localhost without the browser asking first (a CORS "simple request"), but
// not application/json.
func checkJSONContentType(r *http.Request) *Error {
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return &Error{Status: http.StatusUnsupportedMediaType, Kind: KindInvalid, Type: "invalid_request_error", Code: "unsupported_media_type",
			Message: fmt.Sprintf("Content-Encoding %q: send the body uncompressed", ce)}
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Kind: KindInvalid, Type: "invalid_request_error", Code: "unsupported_media_type",
		Message: fmt.Sprintf("Content-Type %q: send the body as application/json", ct)}
}

// decodeOptions make decoding strict where encoding/json is lenient: keys
// match exactly (encoding/json folds case, so "MAX_TOKENS" or "maX_tokenſ"
// would set max_tokens, while Python front ends and gateways match exactly)
// and a key given twice is refused. Unknown keys are ignored, and invalid
// UTF-8 in strings becomes U+FFFD, as before.
var decodeOptions = json.JoinOptions(
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(true),
)

// Unmarshal decodes data into v with the API's strict rules; custom
// UnmarshalJSON methods use it for their parts.
func Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v, decodeOptions) }

// DecodeJSON decodes data into v with the API's strict rules (exact keys,
// no duplicates) and names the field at fault by its JSON path
// (messages[0].role) in a 400.
func DecodeJSON(data []byte, v any) *Error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return BadRequest("request body is empty; want a JSON object")
	}
	err := Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var fe *FieldError
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &fe) && errors.As(err, &se) && se.JSONPointer != "":
		return BadRequest("field %q: %s", fieldPath(se.JSONPointer)+fe.Sub, fe.Msg)
	case errors.As(err, &fe):
		return BadRequest("%s", fe.Error())
	case errors.As(err, &se):
		return BadRequest("field %q: %s", fieldPath(se.JSONPointer), semanticMessage(se))
	case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
		return BadRequest("field %q: given more than once", fieldPath(syn.JSONPointer))
	case errors.As(err, &syn):
		return BadRequest("malformed JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	}
	return BadRequest("malformed JSON: %v", err)
}

// fieldPath writes a JSON pointer as the field path clients know:
// /messages/0/role is messages[0].role.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if tok != "" && strings.Trim(tok, "0123456789") == "" && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// semanticMessage says what was wrong in JSON's terms, not Go's.
func semanticMessage(se *json.SemanticError) string {
	want := jsonKindOf(se.GoType)
	got := ""
	if se.JSONKind != 0 {
		got = ", got " + jsonKindName(se.JSONKind)
	}
	if len(se.JSONValue) > 0 && len(se.JSONValue) < 40 {
		got += " " + string(se.JSONValue)
	}
	if se.Err != nil && strings.Contains(se.Err.Error(), "out of range") {
		return fmt.Sprintf("want %s%s: out of range", want, got)
	}
	return fmt.Sprintf("want %s%s", want, got)
}

func jsonKindOf(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another value"
}

func jsonKindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a value"
}

// Unknown collects the keys of a request object that its type does not
// define: they are ignored (as vLLM and OpenAI's own servers do with
// extra keys), and each is logged once at warn by Exchange.IgnoredKeys.
type Unknown = map[string]jsontext.Value

// FieldError names a field whose value decoded but is not acceptable. An
// UnmarshalJSON method returns it; DecodeJSON replaces Field with the
// value's full path, followed by Sub.
type FieldError struct {
	Field, Msg string
	// Sub is the path of the part at fault inside the value, such as
	// "[1].type"; "" for the value itself.
	Sub string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field+e.Sub, e.Msg) }
