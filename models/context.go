package models

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ollama/ollama/fs/ggml"
)

// Meta is what the daemon reads from a GGUF's header before loading it.
type Meta struct {
	Architecture  string
	ContextLength int    // <arch>.context_length: the context the model was trained for, tokens
	BlockCount    int    // layers
	HeadCountKV   int    // key/value heads
	HeadDimK      int    // key length per head
	HeadDimV      int    // value length per head
	ChatTemplate  string // tokenizer.chat_template; "" when absent
	FileType      string // the weights' type, e.g. "F16", "Q8_0"
	Parameters    uint64 // general.parameter_count; 0 when absent
	Size          int64  // the file's size, bytes
}

// Inspect reads path's GGUF header (no tensors). Errors: the file cannot be
// read, is not a GGUF, or its header claims more than the file holds.
func Inspect(path string) (Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Meta{}, err
	}
	size := st.Size()
	// the decoder allocates what the header claims: check it first
	if err := checkGGUFHeader(f, size); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Meta{}, err
	}
	g, err := ggml.Decode(f, 0) // arrays (the vocabulary) are skipped
	if err != nil {
		return Meta{}, fmt.Errorf("%s: %w", path, err)
	}
	kv := g.KV()
	fileType := kv.FileType().String()
	if kv.Value("general.file_type") == nil || kv.Uint("general.file_type") == 0 {
		fileType = "F32" // file type 0 is ALL_F32, which FileType reads as unknown
	}
	return Meta{
		FileType: fileType, Parameters: kv.ParameterCount(), Size: size,
		Architecture: kv.Architecture(), ContextLength: int(kv.ContextLength()), BlockCount: int(kv.BlockCount()),
		HeadCountKV: int(kv.HeadCountKVMax()), HeadDimK: int(kv.EmbeddingHeadCountK()), HeadDimV: int(kv.EmbeddingHeadCountV()),
		ChatTemplate: kv.ChatTemplate(),
	}, nil
}

// KVBytesPerToken is the KV cache memory one token of context takes, in
// bytes, with the given cache type (f16, q8_0, q4_0).
func (m Meta) KVBytesPerToken(kvType string) float64 {
	per := 2.0
	switch kvType {
	case "q8_0":
		per = 1.0625 // 34 bytes per block of 32
	case "q4_0":
		per = 0.5625 // 18 bytes per block of 32
	}
	return float64(m.BlockCount*m.HeadCountKV*(m.HeadDimK+m.HeadDimV)) * per
}

// Plan is the context each slot gets, and why.
type Plan struct {
	PerSlot int // tokens of context one request may use
	// Pool is the tokens of one KV cache all slots share (llama.cpp's
	// unified cache, engine.Config.KVPool); 0: each slot has PerSlot
	Pool   int
	Reason string // for the start-up log
}

// KV cache sharing modes (--kv-unified).
var KVUnifiedModes = []string{"auto", "on", "off"}

// minAutoContext is the least context per slot the automatic plan gives
// before it reports that the memory is too small.
const minAutoContext = 2048

// PlanContext picks the context per slot when --ctx-size is not set: the
// model's trained context, unless parallel slots of it would take more than
// budget bytes of KV cache, in which case the largest multiple of 256 that
// fits (at least 2048, or the trained context when smaller). budget 0
// means no memory limit is known.
func PlanContext(m Meta, parallel int, kvType string, budget int64) Plan {
	trained := m.ContextLength
	if trained <= 0 {
		trained = 4096
	}
	per := m.KVBytesPerToken(kvType)
	if budget <= 0 || per <= 0 {
		return Plan{PerSlot: trained, Reason: "the model's trained context"}
	}
	fits := int(float64(budget) / per / float64(parallel))
	if fits >= trained {
		return Plan{PerSlot: trained, Reason: fmt.Sprintf("the model's trained context; %s take %s of KV cache", slotsText(parallel), bytesText(int64(per*float64(trained*parallel))))}
	}
	ctx := fits / 256 * 256
	floor := min(minAutoContext, trained)
	if ctx < floor {
		return Plan{PerSlot: floor, Reason: fmt.Sprintf("%d tokens per slot although the KV memory budget (%s) holds only %d: lower --parallel or raise --kv-cache-memory",
			floor, bytesText(budget), fits)}
	}
	return Plan{PerSlot: ctx, Reason: fmt.Sprintf("what %s fit in the KV memory budget of %s (the model was trained for %d)", slotsText(parallel), bytesText(budget), trained)}
}

// ContextPerSlot is the context a slot gets: ctxSize when set (checked
// against the trained context by CheckContext), else PlanContext's with the
// KV memory budget kvMemory (bytes; 0: DefaultKVBudget). unified (one of
// KVUnifiedModes) makes the slots share one KV cache of PerSlot x parallel
// tokens, from which one request may take up to the trained context:
// "on" always, "auto" when the budget could not give every slot the
// trained context (so that a long request still runs, beside short ones),
// "off" never.
func ContextPerSlot(m Meta, ctxSize, parallel int, kvType string, kvMemory int64, unified string) (Plan, error) {
	var p Plan
	if ctxSize != 0 {
		if err := CheckContext(m, ctxSize); err != nil {
			return Plan{}, err
		}
		p = Plan{PerSlot: ctxSize, Reason: "--ctx-size"}
	} else {
		if kvMemory <= 0 {
			kvMemory = DefaultKVBudget()
		}
		p = PlanContext(m, parallel, kvType, kvMemory)
	}
	trained := m.ContextLength
	if trained <= 0 {
		trained = 4096
	}
	if unified == "on" || unified == "auto" && ctxSize == 0 && p.PerSlot < trained {
		p.Pool = p.PerSlot * parallel
		p.PerSlot = min(trained, p.Pool)
		p.Reason += fmt.Sprintf("; %s share one KV cache of %d tokens (--kv-unified %s), one request up to %d", slotsText(parallel), p.Pool, unified, p.PerSlot)
	}
	return p, nil
}

// slotsText is "1 slot" or "N slots".
func slotsText(n int) string {
	if n == 1 {
		return "1 slot"
	}
	return fmt.Sprintf("%d slots", n)
}

// CheckContext refuses a --ctx-size above the model's trained context: the
// binding applies no RoPE scaling, so the model would see positions it
// never learned.
func CheckContext(m Meta, ctx int) error {
	if m.ContextLength > 0 && ctx > m.ContextLength {
		return fmt.Errorf("%d is above the %d tokens the model was trained for", ctx, m.ContextLength)
	}
	return nil
}

// DefaultKVBudget is the KV cache memory used when --kv-cache-memory is not
// set: a quarter of the memory available now (MemAvailable in
// /proc/meminfo); 0 when that cannot be read.
func DefaultKVBudget() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024 / 4
		}
	}
	return 0
}

// Digest starts reading path's SHA-256 in the background (at most once,
// stopping with ctx) and returns a function that gives "sha256:<hex>" once
// it is known, "" until then or when the file cannot be read.
func Digest(ctx context.Context, path string) func() string {
	var v atomic.Value
	v.Store("")
	go func() {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		h := sha256.New()
		buf := make([]byte, 1<<20)
		for ctx.Err() == nil {
			n, err := f.Read(buf)
			h.Write(buf[:n])
			if err == io.EOF {
				v.Store("sha256:" + hex.EncodeToString(h.Sum(nil)))
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return func() string { return v.Load().(string) }
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
