package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// DeltaEvent renders the many events of a stream that differ only in their
// text: the JSON around the text is encoded once per request, and each event
// costs one JSON string escape into a buffer reused for the whole stream.
type DeltaEvent struct {
	prefix, suffix []byte
	buf            []byte
}

// DeltaMark stands for the text in the value given to NewDeltaEvent.
const DeltaMark = "\x00qwend-delta\x00"

// NewDeltaEvent encodes v, in which exactly one string is DeltaMark, between
// before and after, and keeps the bytes either side of that string.
func NewDeltaEvent(before string, v any, after string) (*DeltaEvent, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	mark, _ := json.Marshal(DeltaMark)
	i := bytes.Index(b, mark)
	if i < 0 || bytes.Contains(b[i+len(mark):], mark) {
		return nil, fmt.Errorf("event template: want the text mark once in %s", b)
	}
	return &DeltaEvent{
		prefix: append([]byte(before), b[:i]...),
		suffix: append(b[i+len(mark):len(b):len(b)], after...),
	}, nil
}

// Render returns the event for text, valid until the next render.
func (d *DeltaEvent) Render(text string) []byte {
	d.buf = append(d.buf[:0], d.prefix...)
	d.buf = appendJSONString(d.buf, text)
	d.buf = append(d.buf, d.suffix...)
	return d.buf
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: HTML-safe, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
