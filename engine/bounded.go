package engine

import (
	"context"
	"errors"
	"unicode"
	"unicode/utf8"
)

// errPromptOverContext: tokenization stopped once the prompt passed the
// context; Generate reports it as ErrContextWindow.
var errPromptOverContext = errors.New("the prompt is longer than the context")

// tokenizeChunk is the most text one llama_tokenize call gets when the text
// can be cut without changing its tokens (see safeChunks), in bytes.
const tokenizeChunk = 64 << 10

// tokenizeBounded tokenizes req's prompt with its work bounded by limit
// tokens (0: none): the template segments, whose tokens are cached, are
// counted first, so a body of very many small messages is refused without
// tokenizing their text; then text is tokenized in chunks of at most
// tokenizeChunk bytes, checking ctx between them and stopping as soon as
// the count passes limit. An oversized prompt costs at most about a
// context's worth of tokenization. Errors: errPromptOverContext, the
// engine's error for a done ctx, ErrClosed, or a tokenizer error.
func (e *Engine) tokenizeBounded(ctx context.Context, req *Request, limit int) ([]int, error) {
	segs := req.Segments
	if len(segs) == 0 {
		segs = []Segment{{Text: req.Prompt, Special: true}}
	} else if limit > 0 {
		n := 0
		for _, s := range segs {
			if s.Special && s.Text != "" && len(s.Text) <= segmentCacheMaxLen {
				t, err := e.tokenizeSegment(s)
				if err != nil {
					return nil, err
				}
				if n += len(t); n >= limit {
					return nil, errPromptOverContext
				}
			}
		}
	}
	var out []int
	for _, s := range segs {
		for _, piece := range safeChunks(s.Text, tokenizeChunk) {
			if ctx.Err() != nil {
				return nil, ctxErr(ctx)
			}
			t, err := e.tokenizeSegment(Segment{Text: piece, Special: s.Special})
			if err != nil {
				return nil, err
			}
			out = append(out, t...)
			if limit > 0 && len(out) >= limit {
				return out, errPromptOverContext
			}
		}
	}
	return out, nil
}

// safeChunks cuts text into pieces of at most size bytes where a cut
// changes no token: right after a newline that a character other than
// whitespace follows. There the Qwen2 pre-tokenizer ends a pre-token
// whatever comes next, BPE merges never cross a pre-token, and no special
// token holds a newline. A stretch with no such place stays whole (its long
// runs are split by tokenize). Text of at most size bytes is one piece.
func safeChunks(text string, size int) []string {
	if text == "" {
		return nil
	}
	var out []string
	for len(text) > size {
		cut := -1
		for i := size; i > 0; i-- {
			if safeCut(text, i) {
				cut = i
				break
			}
		}
		for i := size + 1; cut < 0 && i < len(text); i++ {
			if safeCut(text, i) {
				cut = i
			}
		}
		if cut < 0 {
			break
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	return append(out, text)
}

// safeCut: text[i-1] is a newline and text[i] starts a character that is
// not whitespace.
func safeCut(text string, i int) bool {
	if i <= 0 || i >= len(text) || text[i-1] != '\n' {
		return false
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return !unicode.IsSpace(r)
}
