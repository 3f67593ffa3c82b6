package engine

import (
	"context"
	"fmt"
	"strings"
)

// TokenizeText is text's tokens as a prompt's user content gets them:
// control-token text in it stays plain text. The work is bounded like a
// prompt's (ErrContextWindow past limit tokens; 0: none).
func (e *Engine) TokenizeText(ctx context.Context, text string, limit int) ([]int, error) {
	toks, err := e.tokenizeBounded(ctx, &Request{Segments: []Segment{{Text: text}}}, limit)
	if err == errPromptOverContext {
		return nil, fmt.Errorf("%w: the text is over %d tokens", ErrContextWindow, limit)
	}
	return toks, err
}

// Detokenize is the text of tokens; an id outside the vocabulary is
// ErrInvalid naming its index.
func (e *Engine) Detokenize(tokens []int) (string, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return "", ErrClosed
	}
	var b strings.Builder
	for i, t := range tokens {
		if t < 0 || t >= e.nVocab {
			return "", fmt.Errorf("%w: tokens[%d]: %d is not in the vocabulary (0 to %d)", ErrInvalid, i, t, e.nVocab-1)
		}
		b.WriteString(e.model.TokenToPiece(t))
	}
	return b.String(), nil
}
