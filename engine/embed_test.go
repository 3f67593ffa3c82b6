package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestEmbed(t *testing.T) {
	e := newEngine(t, Config{Parallel: 1, ContextPerSlot: 256, BatchSize: 32}) // long inputs take several batches
	// a generation runs beside the embeddings, on its own context
	done := make(chan error, 1)
	go func() {
		_, _, err := generate(t, e, context.Background(), greedy("keep decoding", 64))
		done <- err
	}()
	got, err := e.Embed(context.Background(), []string{"func main() {}", "func main() {}", "SELECT * FROM t", strings.Repeat("long input ", 30)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d embeddings", len(got))
	}
	for i, g := range got {
		var n float64
		for _, x := range g.Vector {
			n += float64(x) * float64(x)
		}
		if math.Abs(math.Sqrt(n)-1) > 1e-4 || g.Tokens == 0 || len(g.Vector) != len(got[0].Vector) {
			t.Errorf("input %d: norm %g, %d tokens, %d dims", i, math.Sqrt(n), g.Tokens, len(g.Vector))
		}
	}
	same, diff := dot(got[0].Vector, got[1].Vector), dot(got[0].Vector, got[2].Vector)
	if math.Abs(same-1) > 1e-5 || diff > 0.9999 {
		t.Errorf("cosine of the same text %g, of different texts %g", same, diff)
	}
	if err := <-done; err != nil {
		t.Errorf("generation beside the embeddings: %v", err)
	}
	if _, err := e.Embed(context.Background(), []string{"ok", strings.Repeat("lorem ipsum ", 200)}); !errors.Is(err, ErrContextWindow) || !strings.Contains(err.Error(), "input 1") {
		t.Errorf("over the context: %v", err)
	}
	if _, err := e.Embed(context.Background(), []string{""}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty input: %v", err)
	}
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
