package models

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwend/qwend/synth"
)

func TestInspectSyntheticModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := synth.WriteTiny(context.Background(), path, 1); err != nil {
		t.Fatal(err)
	}
	m, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	shape, _ := synth.LookupShape("tiny")
	if m.Architecture != "qwen2" || m.ContextLength != shape.ContextLength || m.BlockCount != shape.Blocks || m.HeadCountKV != shape.KVHeads ||
		m.HeadDimK != shape.HeadDim() {
		t.Errorf("meta %+v, shape %+v", m, shape)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("a missing file inspected")
	}
}

func TestPlanContext(t *testing.T) {
	// Qwen2.5-Coder-1.5B: 28 layers, 2 KV heads of 128: 28 KiB per token in f16
	m := Meta{ContextLength: 32768, BlockCount: 28, HeadCountKV: 2, HeadDimK: 128, HeadDimV: 128}
	if got := m.KVBytesPerToken("f16"); got != 28*2*256*2 {
		t.Fatalf("bytes per token %v", got)
	}
	for _, tc := range []struct {
		parallel int
		budget   int64
		want     int
		mention  string
	}{
		{4, 0, 32768, "trained"},
		{4, 8 << 30, 32768, "trained"},
		{4, 2 << 30, 18688, "budget"}, // 2 GiB / 28 KiB / 4 = 18724.6 -> 18688
		{64, 1 << 30, 2048, "lower --parallel"},
	} {
		p := PlanContext(m, tc.parallel, "f16", tc.budget)
		if p.PerSlot != tc.want || !strings.Contains(p.Reason, tc.mention) {
			t.Errorf("parallel %d budget %d: %+v, want %d mentioning %q", tc.parallel, tc.budget, p, tc.want, tc.mention)
		}
	}
	if p := PlanContext(Meta{ContextLength: 1024, BlockCount: 28, HeadCountKV: 2, HeadDimK: 128, HeadDimV: 128}, 64, "f16", 1<<20); p.PerSlot != 1024 {
		t.Errorf("small trained context: %+v", p)
	}
	if err := CheckContext(m, 65536); err == nil || !strings.Contains(err.Error(), "32768") {
		t.Errorf("above the trained context: %v", err)
	}
	if err := CheckContext(m, 32768); err != nil {
		t.Error(err)
	}
	if DefaultKVBudget() <= 0 {
		t.Error("no memory budget from /proc/meminfo")
	}
}

// --kv-unified: auto shares one KV cache when the budget cannot give each
// slot the trained context, and lets one request use up to the trained
// context within it; on shares it always (--ctx-size then sizes each
// slot's part); off never.
func TestContextPerSlotKVUnified(t *testing.T) {
	m := Meta{ContextLength: 32768, BlockCount: 28, HeadCountKV: 2, HeadDimK: 128, HeadDimV: 128} // 28 KiB a token
	for _, tc := range []struct {
		ctx, parallel int
		budget        int64
		mode          string
		perSlot, pool int
	}{
		{0, 4, 2 << 30, "auto", 32768, 4 * 18688}, // 18,688 a slot: shared, one request up to the trained 32,768
		{0, 4, 8 << 30, "auto", 32768, 0},         // the trained context for every slot: nothing to share
		{0, 4, 2 << 30, "off", 18688, 0},
		{4096, 4, 0, "on", 16384, 16384},
		{4096, 4, 0, "auto", 4096, 0}, // --ctx-size chosen: kept per slot
		{0, 2, 1 << 30, "on", 32768, 2 * 18688},
	} {
		p, err := ContextPerSlot(m, tc.ctx, tc.parallel, "f16", tc.budget, tc.mode)
		if err != nil || p.PerSlot != tc.perSlot || p.Pool != tc.pool || tc.pool > 0 && !strings.Contains(p.Reason, "share one KV cache") {
			t.Errorf("%+v: %+v %v", tc, p, err)
		}
	}
}
