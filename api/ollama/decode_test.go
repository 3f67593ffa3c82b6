package ollama

import (
	"strings"
	"testing"

	"github.com/qwend/qwend/api"
)

func TestStrictKeysAndExtremes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		numPredict int
		refused    string
	}{
		{"exact", `{"prompt":"x","options":{"num_predict":2}}`, 2, ""},
		{"upper case does not override", `{"prompt":"x","options":{"num_predict":2,"NUM_PREDICT":40}}`, 2, ""},
		{"duplicate option", `{"prompt":"x","options":{"num_predict":2,"num_predict":40}}`, 0, "options.num_predict"},
		{"null stop is absent", `{"prompt":"x","options":{"stop":null,"num_predict":1}}`, 1, ""},
		{"num_predict at 2^63-1", `{"prompt":"x","options":{"num_predict":9223372036854775807}}`, 0, "options.num_predict"},
		{"num_predict past int64", `{"prompt":"x","options":{"num_predict":9223372036854775808}}`, 0, "options.num_predict"},
		{"num_predict at -2^63", `{"prompt":"x","options":{"num_predict":-9223372036854775808}}`, 0, "options.num_predict"},
		{"top_k huge", `{"prompt":"x","options":{"top_k":9223372036854775807}}`, 0, "options.top_k"},
		{"repeat_last_n huge", `{"prompt":"x","options":{"repeat_last_n":9223372036854775807}}`, 0, "options.repeat_last_n"},
		{"temperature 1e308", `{"prompt":"x","options":{"temperature":1e308}}`, 0, "options.temperature"},
		{"seed extremes are seeds", `{"prompt":"x","options":{"seed":-9223372036854775808,"num_predict":1}}`, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in GenerateRequest
			aerr := api.DecodeJSON([]byte(tc.body), &in)
			if aerr == nil {
				req, e := GenerateToEngine(&in, "id", false)
				if e != nil {
					aerr = e
				} else if req.MaxTokens != tc.numPredict {
					t.Errorf("max tokens %d, want %d", req.MaxTokens, tc.numPredict)
				}
			}
			if tc.refused == "" && aerr != nil {
				t.Errorf("refused: %v", aerr)
			}
			if tc.refused != "" && (aerr == nil || !strings.Contains(aerr.Message, `"`+tc.refused+`"`)) {
				t.Errorf("error %v, want one naming %q", aerr, tc.refused)
			}
		})
	}
}
