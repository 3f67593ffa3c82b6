package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DecodeBody reads one JSON object of at most limit bytes into v. A body
// over the limit is a 413; anything else wrong is a 400 naming the field at
// fault.
func DecodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *Error {
	body := http.MaxBytesReader(w, r.Body, limit)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Kind: KindInvalid, Type: "invalid_request_error", Message: fmt.Sprintf("request body over %d bytes", limit)}
		}
		return BadRequest("read body: %v", err)
	}
	return DecodeJSON(data, v)
}

// DecodeJSON decodes data into v, naming the field at fault in its error.
func DecodeJSON(data []byte, v any) *Error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return BadRequest("request body is empty; want a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var fe *FieldError
		switch {
		case errors.As(err, &fe):
			return BadRequest("%s", fe.Error())
		case errors.As(err, &te):
			return BadRequest("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		case errors.As(err, &se):
			return BadRequest("malformed JSON at byte %d: %v", se.Offset, err)
		}
		return BadRequest("malformed JSON: %v", err)
	}
	return nil
}

// FieldError names a field whose value decoded but is not acceptable.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Msg) }
