package openai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qwend/qwend/engine"
)

// Completions' text_offset counts characters (code points) as OpenAI and
// vLLM do, across calls; top_logprobs keep the likeliest first, and two
// alternatives with one text keep the likelier.
func TestCompletionLogprobsShape(t *testing.T) {
	var spelled strings.Builder
	first := completionLogprobs([]engine.TokenLogprob{
		{Token: "日本", Logprob: -0.5, Top: []engine.TopLogprob{{Token: "日本", Logprob: -0.5}, {Token: " a", Logprob: -1.25}, {Token: "日本", Logprob: -3}}},
		{Token: "語", Logprob: -0.25},
	}, &spelled)
	second := completionLogprobs([]engine.TokenLogprob{{Token: "x", Logprob: -2}}, &spelled)
	b, err := json.Marshal([]any{first, second})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"text_offset":[0,2],"token_logprobs":[-0.5,-0.25],"tokens":["日本","語"],"top_logprobs":[{"日本":-0.5," a":-1.25},{}]},` +
		`{"text_offset":[3],"token_logprobs":[-2],"tokens":["x"],"top_logprobs":[{}]}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
