package api

import "github.com/qwend/qwend/engine"

// TokenLogprobs is the per-token logprobs list that OpenAI's chat
// completions (logprobs.content), its Responses API (an output_text part's
// logprobs) and Ollama (logprobs) share: per token its text, its log
// probability, its UTF-8 bytes (a token may hold part of a UTF-8 sequence,
// which its JSON string cannot show) and its top_logprobs, each with the
// same three fields. omitEmptyTop leaves top_logprobs out when there are
// none (Ollama's omitempty); OpenAI's shapes always carry the key.
func TokenLogprobs(lps []engine.TokenLogprob, omitEmptyTop bool) []map[string]any {
	out := make([]map[string]any, len(lps))
	for i, lp := range lps {
		out[i] = map[string]any{"token": lp.Token, "logprob": lp.Logprob, "bytes": tokenBytes(lp.Token)}
		if len(lp.Top) == 0 && omitEmptyTop {
			continue
		}
		top := make([]map[string]any, len(lp.Top))
		for j, a := range lp.Top {
			top[j] = map[string]any{"token": a.Token, "logprob": a.Logprob, "bytes": tokenBytes(a.Token)}
		}
		out[i]["top_logprobs"] = top
	}
	return out
}

// tokenBytes is a token's text as a list of byte values.
func tokenBytes(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}
