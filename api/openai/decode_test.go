package openai

import (
	"strings"
	"testing"

	"github.com/qwend/qwend/api"
)

// Keys match exactly and once: a case-folded or Unicode-folded key is an
// unknown key (ignored), a repeated key is refused by name.
func TestStrictKeys(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		name, body string
		maxTokens  int    // what max_tokens must end up as when accepted
		refused    string // the field named in the 400, "" when accepted
	}{
		{"exact", `{` + msgs + `,"max_tokens":1}`, 1, ""},
		{"upper case does not override", `{` + msgs + `,"max_tokens":1,"MAX_TOKENS":40}`, 1, ""},
		{"mixed case alone is unknown", `{` + msgs + `,"Max_Tokens":40}`, 0, ""},
		{"long s does not fold", `{` + msgs + `,"max_tokens":1,"maX_tokenſ":40}`, 1, ""},
		{"kelvin sign does not fold", `{` + msgs + `,"top_\u212a":3,"max_tokens":2}`, 2, ""},
		{"duplicate key", `{` + msgs + `,"max_tokens":1,"max_tokens":40}`, 0, "max_tokens"},
		{"duplicate nested key", `{"messages":[{"role":"user","role":"system","content":"hi"}]}`, 0, "messages[0].role"},
		{"wrong type names its path", `{"messages":[{"role":5,"content":"hi"}]}`, 0, "messages[0].role"},
		{"bad content names its path", `{"messages":[{"role":"user","content":7}]}`, 0, "messages[0].content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in ChatRequest
			aerr := api.DecodeJSON([]byte(tc.body), &in)
			if aerr == nil {
				req, e := ChatToEngine(&in, "id", false)
				if e != nil {
					aerr = e
				} else if tc.refused == "" && req.MaxTokens != tc.maxTokens {
					t.Errorf("max tokens %d, want %d", req.MaxTokens, tc.maxTokens)
				}
			}
			switch {
			case tc.refused == "" && aerr != nil:
				t.Errorf("refused: %v", aerr)
			case tc.refused != "" && (aerr == nil || !strings.Contains(aerr.Message, `"`+tc.refused+`"`)):
				t.Errorf("error %v, want one naming %q", aerr, tc.refused)
			case aerr != nil && (aerr.Status != 400 || strings.Contains(aerr.Message, "openai.") || strings.Contains(aerr.Message, "main.")):
				t.Errorf("error %d %q leaks Go names or has the wrong status", aerr.Status, aerr.Message)
			}
		})
	}
}

// Every number a client sends is range-checked before arithmetic: at the
// extremes each field is refused by name or accepted within its range,
// never wrapped.
func TestNumberExtremes(t *testing.T) {
	extremes := []string{"9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e308", "-1e308", "4294967296", "1e-320"}
	fields := map[string]func(*ChatRequest) bool{ // true when the accepted value is in range
		"max_tokens":            func(in *ChatRequest) bool { return *in.MaxTokens <= api.MaxTokensLimit },
		"max_completion_tokens": func(in *ChatRequest) bool { return *in.MaxCompletionTokens <= api.MaxTokensLimit },
		"top_k":                 func(in *ChatRequest) bool { return *in.TopK <= api.TopKLimit },
		"n":                     func(in *ChatRequest) bool { return *in.N == 1 },
		"seed":                  func(in *ChatRequest) bool { return true }, // any 64-bit seed is a seed
		"temperature":           func(in *ChatRequest) bool { return *in.Temperature >= 0 && *in.Temperature <= 2 },
		"top_p":                 func(in *ChatRequest) bool { return *in.TopP >= 0 && *in.TopP <= 1 },
		"min_p":                 func(in *ChatRequest) bool { return *in.MinP >= 0 && *in.MinP <= 1 },
		"repeat_penalty":        func(in *ChatRequest) bool { return *in.RepeatPenalty >= 0 },
	}
	for field, inRange := range fields {
		for _, v := range extremes {
			body := `{"messages":[{"role":"user","content":"hi"}],"` + field + `":` + v + `}`
			var in ChatRequest
			aerr := api.DecodeJSON([]byte(body), &in)
			if aerr == nil {
				_, aerr = ChatToEngine(&in, "id", false)
			}
			if aerr != nil {
				if aerr.Status != 400 || !strings.Contains(aerr.Message, `"`+field+`"`) {
					t.Errorf("%s=%s: error %d %q does not name the field", field, v, aerr.Status, aerr.Message)
				}
				continue
			}
			if !inRange(&in) {
				t.Errorf("%s=%s accepted out of range", field, v)
			}
		}
	}
}
