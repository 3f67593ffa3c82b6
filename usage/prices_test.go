package usage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPrices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.yaml")
	os.WriteFile(path, []byte(`version: v1
models:
  coder:
    input_per_million: 0.10
    cached_input_per_million: 0.05
    output_per_million: 0.30
  self:
    gpu_hour_usd: 3.60
`), 0o644)
	p, err := LoadPrices(path)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000,000 prompt tokens of which 200,000 cached, 100,000 output:
	// 0.8 M × 0.10 + 0.2 M × 0.05 + 0.1 M × 0.30 = 0.08 + 0.01 + 0.03 = $0.12
	c, v, err := p.Cost(Usage{Model: "coder", PromptTokens: 1_000_000, CachedTokens: 200_000, OutputTokens: 100_000})
	if err != nil || c != 120_000 || v != "v1" {
		t.Errorf("token cost %d %q %v, want 120000 micro-USD", c, v, err)
	}
	// 10 s of a $3.60 GPU hour = $0.01
	c, _, err = p.Cost(Usage{Model: "self", PromptTokens: 5, Compute: 10 * time.Second})
	if err != nil || c != 10_000 {
		t.Errorf("gpu cost %d %v, want 10000", c, err)
	}
	if _, _, err := p.Cost(Usage{Model: "other"}); !errors.Is(err, ErrNoPrice) {
		t.Errorf("unpriced model: %v", err)
	}
	var none *Prices
	if c, _, err := none.Cost(Usage{Model: "x", PromptTokens: 9}); c != 0 || err != nil {
		t.Errorf("no prices: %d %v", c, err)
	}
	for name, bad := range map[string]string{
		"no version": "models:\n  a:\n    input_per_million: 1\n",
		"negative":   "version: v\nmodels:\n  a:\n    input_per_million: -1\n",
		"both kinds": "version: v\nmodels:\n  a:\n    input_per_million: 1\n    gpu_hour_usd: 2\n",
		"no models":  "version: v\n",
	} {
		os.WriteFile(path, []byte(bad), 0o644)
		if _, err := LoadPrices(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
