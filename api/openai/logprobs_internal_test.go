package openai

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/qwend/qwend/engine"
)

// Completions' text_offset counts characters (code points) as OpenAI and
// vLLM do, across calls; top_logprobs keep the likeliest first, and two
// alternatives with one text keep the likelier.
func TestCompletionLogprobsShape(t *testing.T) {
	var spelled charCounter
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

// charCounter counts as utf8.RuneCountInString counts the text so far,
// pieces that split a character included.
func TestCharCounter(t *testing.T) {
	pieces := []string{"a", "\xe6\x97", "\xa5本", "\xff", "é", "\xf0\x9f", "\xa6", "\x99", "z"}
	var c charCounter
	text := ""
	for _, p := range pieces {
		if got, want := c.add(p), utf8.RuneCountInString(text); got != want {
			t.Errorf("before %q: %d characters, want %d", p, got, want)
		}
		text += p
	}
}
