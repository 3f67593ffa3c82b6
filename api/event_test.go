package api

import (
	"encoding/json"
	"testing"
)

var jsonStringCases = []string{
	"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rret", "\b\f\x00\x01\x1f\x7f",
	"<tag> & amp", "héllo wörld 😀", "bad \xff byte", "cut \xe2\x82", "sep \u2028 \u2029 end",
	"\xed\xa0\x80 surrogate", "func main() {\n\tfmt.Println(\"hi\")\n}",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStringCases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	})
}

func TestDeltaEventRendersAsMarshal(t *testing.T) {
	chunk := func(text string) map[string]any {
		return map[string]any{"id": "cmpl-1", "object": "text_completion", "created": 7,
			"choices": []any{map[string]any{"index": 0, "text": text, "finish_reason": nil}}}
	}
	d, err := NewDeltaEvent("data: ", chunk(DeltaMark), "\n\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range jsonStringCases {
		b, _ := json.Marshal(chunk(s))
		if got, want := string(d.Render(s)), "data: "+string(b)+"\n\n"; got != want {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { d.Render("some text") }); n != 0 {
		t.Errorf("render allocates %.0f times", n)
	}
	if _, err := NewDeltaEvent("", map[string]string{"a": DeltaMark, "b": DeltaMark}, ""); err == nil {
		t.Error("a template with the mark twice was accepted")
	}
	if _, err := NewDeltaEvent("", map[string]string{"a": "x"}, ""); err == nil {
		t.Error("a template without the mark was accepted")
	}
}
