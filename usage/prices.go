package usage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Price is one model's price: USD per million input, cached input and
// output tokens, or, for self-hosted serving, USD per GPU hour, charged by
// each request's share of the compute.
type Price struct {
	InputPerMillion       float64 `yaml:"input_per_million"`
	CachedInputPerMillion float64 `yaml:"cached_input_per_million"`
	OutputPerMillion      float64 `yaml:"output_per_million"`
	GPUHourUSD            float64 `yaml:"gpu_hour_usd"`
}

// Prices is the --prices file (YAML):
//
//	version: "2026-11-30"       # recorded with every cost
//	models:
//	  qwen2.5-coder-1.5b:
//	    input_per_million: 0.10
//	    cached_input_per_million: 0.05
//	    output_per_million: 0.30
//	  "*":                       # any other model
//	    gpu_hour_usd: 2.50
//
// A model with gpu_hour_usd costs gpu_hour_usd × its compute seconds /
// 3600; otherwise tokens × the per-million prices. Cached input tokens are
// charged at the cached price and taken out of the input tokens.
type Prices struct {
	Version string           `yaml:"version"`
	Models  map[string]Price `yaml:"models"`
}

// LoadPrices reads and checks a prices file.
func LoadPrices(path string) (*Prices, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Prices
	if err := yaml.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.Version == "" {
		return nil, fmt.Errorf("%s: version is required (it is recorded with every cost)", path)
	}
	if len(p.Models) == 0 {
		return nil, fmt.Errorf("%s: no models", path)
	}
	for name, m := range p.Models {
		for field, v := range map[string]float64{"input_per_million": m.InputPerMillion, "cached_input_per_million": m.CachedInputPerMillion,
			"output_per_million": m.OutputPerMillion, "gpu_hour_usd": m.GPUHourUSD} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: models.%s.%s: %v is not a price", path, name, field, v)
			}
		}
		if m.GPUHourUSD > 0 && (m.InputPerMillion > 0 || m.OutputPerMillion > 0 || m.CachedInputPerMillion > 0) {
			return nil, fmt.Errorf("%s: models.%s: gpu_hour_usd or per-token prices, not both", path, name)
		}
	}
	return &p, nil
}

// ErrNoPrice: the prices name neither the model nor "*".
var ErrNoPrice = errors.New("no price for the model")

// Usage is what a request consumed, for pricing.
type Usage struct {
	Model                                    string
	PromptTokens, CachedTokens, OutputTokens int64
	Compute                                  time.Duration // its share of the scheduler's step time
}

// Cost prices u in integer micro-dollars: USD per million tokens times
// tokens is micro-dollars per token exactly. nil prices cost nothing.
func (p *Prices) Cost(u Usage) (microUSD int64, version string, err error) {
	if p == nil {
		return 0, "", nil
	}
	m, ok := p.Models[u.Model]
	if !ok {
		if m, ok = p.Models["*"]; !ok {
			return 0, p.Version, ErrNoPrice
		}
	}
	if m.GPUHourUSD > 0 {
		return int64(math.Round(m.GPUHourUSD * u.Compute.Seconds() / 3600 * 1e6)), p.Version, nil
	}
	uncached := max(0, u.PromptTokens-u.CachedTokens)
	c := float64(uncached)*m.InputPerMillion + float64(u.CachedTokens)*m.CachedInputPerMillion + float64(u.OutputTokens)*m.OutputPerMillion
	return int64(math.Round(c)), p.Version, nil
}

// MicroToUSD converts micro-dollars to dollars.
func MicroToUSD(micro int64) float64 { return float64(micro) / 1e6 }
