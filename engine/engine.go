// Package engine runs Qwen inference through llama.cpp with continuous
// batching. One goroutine, the scheduler, owns the llama context: it packs
// every active sequence into one batch per step, decodes, samples and hands
// text back to the callers of Generate.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/ollama/ollama/llama"
	"github.com/ollama/ollama/ml"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is what the engine needs to load a model. Zero values take the
// defaults noted on each field.
type Config struct {
	ModelPath      string
	ModelName      string // the id clients use; required
	Parallel       int    // slots decoded together; default 4
	ContextPerSlot int    // tokens per slot; default 4096
	// KVPool, when above 0, is the tokens of one KV cache every slot draws
	// from (llama.cpp's unified KV cache), so that one long request and
	// several short ones run together; ContextPerSlot is then what one
	// request may use (at most KVPool). When the pool runs short, idle
	// slots' cached prefixes go first, then the request admitted last is
	// preempted: its cells are freed and it waits at the head of the queue
	// to be recomputed (prompt and output so far) and go on, its stream
	// only paused (vLLM's recompute preemption). 0: each slot has its own
	// ContextPerSlot tokens.
	KVPool         int
	GPULayers      int    // layers offloaded to a GPU; -1 all (default), 0 none
	Threads        int    // CPU threads for ggml; default the number of cores
	BatchSize      int    // prompt tokens per slot per step; default 512
	FlashAttention string // "auto" (default), "on", "off"
	KVCacheType    string // "f16" (default), "q8_0", "q4_0"
	QueueLength    int    // requests that may wait for a slot; default 64
	// Mmap maps the weights from the file instead of reading them into
	// memory: faster start, less resident memory, but file-backed pages
	// get no transparent huge pages and CPU decoding is slower.
	Mmap bool
	// Progress, when set, receives the model loading progress in [0, 1].
	Progress func(float32)
}

func (c *Config) setDefaults() {
	if c.Parallel == 0 {
		c.Parallel = 4
	}
	if c.ContextPerSlot == 0 {
		c.ContextPerSlot = 4096
	}
	if c.Threads == 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.BatchSize == 0 {
		c.BatchSize = 512
	}
	if c.FlashAttention == "" {
		c.FlashAttention = "auto"
	}
	if c.KVCacheType == "" {
		c.KVCacheType = "f16"
	}
}

// Accepted values of Config.FlashAttention and Config.KVCacheType.
var (
	FlashAttentionModes = []string{"auto", "on", "off"}
	KVCacheTypes        = []string{"f16", "q8_0", "q4_0"}
)

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.ModelPath == "":
		return errors.New("model path is empty")
	case c.ModelName == "":
		return errors.New("model name is empty")
	case c.Parallel < 1 || c.Parallel > 256:
		return fmt.Errorf("parallel %d out of range [1, 256]", c.Parallel)
	case c.ContextPerSlot < 16:
		return fmt.Errorf("context per slot %d below 16", c.ContextPerSlot)
	case c.KVPool < 0 || c.KVPool > 0 && c.KVPool < c.ContextPerSlot:
		return fmt.Errorf("kv pool %d is below the context per slot (%d)", c.KVPool, c.ContextPerSlot)
	case c.GPULayers < -1:
		return fmt.Errorf("gpu layers %d below -1", c.GPULayers)
	case c.Threads < 1:
		return fmt.Errorf("threads %d below 1", c.Threads)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size %d below 1", c.BatchSize)
	case c.QueueLength < 0:
		return fmt.Errorf("queue length %d below 0", c.QueueLength)
	}
	if !slices.Contains(FlashAttentionModes, c.FlashAttention) {
		return fmt.Errorf("flash attention %q is not one of %s", c.FlashAttention, strings.Join(FlashAttentionModes, ", "))
	}
	if !slices.Contains(KVCacheTypes, c.KVCacheType) {
		return fmt.Errorf("kv cache type %q is not one of %s", c.KVCacheType, strings.Join(KVCacheTypes, ", "))
	}
	return nil
}

// Option sets an optional dependency of the engine.
type Option func(*Engine)

// WithObserver sets who receives the engine's measurements.
func WithObserver(o Observer) Option { return func(e *Engine) { e.obs = o } }

// WithTracerProvider sets where inference spans go (default: no-op).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(e *Engine) { e.tracer = tp.Tracer("github.com/qwend/qwend/engine") }
}

// Engine serves one model.
type Engine struct {
	cfg    Config
	obs    Observer
	tracer trace.Tracer

	model *llama.Model
	lctx  *llama.Context
	emb   embedder // the embedding context, made on first use
	// tokenizers bounds the requests tokenized at once (one per CPU)
	tokenizers chan struct{}
	batch      *llama.Batch
	nVocab     int
	pieces     []string // token text by id, filled on first use (scheduler only)
	pieceOK    []bool
	ends       []bool  // by token id: ends the generation (endTokens)
	sampled    []*slot // the slots sampled in a step (scheduler only)
	segMu      sync.RWMutex
	segCache   map[string][]int // tokens of template segments
	gvocab     grammarVocab     // the vocabulary as grammars see it, built on first use
	pool       *samplePool      // samples a step's slots across cores
	info       Info
	incoming   chan *sequence

	admitted atomic.Int64 // requests holding a place: waiting or running
	running  atomic.Int64
	kvUsed   atomic.Int64
	// preemptions counts the sequences preempted for KV cells
	preemptions atomic.Int64
	stepped     atomic.Int64 // unix ns when the scheduler last finished a step (or started)

	life   sync.RWMutex // held for reading while the model is used outside the scheduler
	closed bool

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Info describes the loaded model and where it runs.
type Info struct {
	Name           string
	Path           string
	Backend        string // "cpu" or the GPU library, e.g. "CUDA"
	GPULayers      int    // layers requested on the GPU (-1: all)
	Slots          int
	ContextPerSlot int // the tokens one request may use, prompt and output
	KVPool         int // the shared KV cache's tokens; 0: each slot has ContextPerSlot
	LoadDuration   time.Duration
	// ChatTemplate is the GGUF's tokenizer.chat_template, a Jinja
	// template; "" when the model has none.
	ChatTemplate string
	// Fingerprint changes with the model file, the llama.cpp build and
	// the settings that change results (OpenAI's system_fingerprint).
	Fingerprint string
}

var backendOnce sync.Once

// New loads the model and starts the scheduler. ctx bounds only loading.
func New(ctx context.Context, cfg Config, opts ...Option) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("engine config: %w", err)
	}
	if _, err := os.Stat(cfg.ModelPath); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	e := &Engine{cfg: cfg, obs: nopObserver{}, tracer: noop.NewTracerProvider().Tracer(""), segCache: map[string][]int{}}
	for _, o := range opts {
		o(e)
	}
	start := time.Now()
	backendOnce.Do(llama.BackendInit)
	if arch, err := llama.GetModelArch(cfg.ModelPath); err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.ModelPath, err)
	} else if arch != "qwen2" && arch != "qwen3" {
		return nil, fmt.Errorf("model %s: architecture %q is not a Qwen architecture (qwen2, qwen3)", cfg.ModelPath, arch)
	}
	gpus := llama.EnumerateGPUs()
	layers := cfg.GPULayers
	if layers < 0 {
		layers = 999
	}
	if len(gpus) == 0 {
		layers = 0
	}
	progress := func(p float32) {
		if cfg.Progress != nil {
			cfg.Progress(p)
		}
	}
	var err error
	e.model, err = llama.LoadModelFromFile(cfg.ModelPath, llama.ModelParams{NumGpuLayers: layers, UseMmap: cfg.Mmap, Progress: progress})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		llama.FreeModel(e.model)
		return nil, err
	}
	fa := map[string]ml.FlashAttentionType{"auto": ml.FlashAttentionAuto, "on": ml.FlashAttentionEnabled, "off": ml.FlashAttentionDisabled}[cfg.FlashAttention]
	nCtx := cfg.ContextPerSlot * cfg.Parallel
	if cfg.KVPool > 0 {
		nCtx = cfg.KVPool
	}
	params := llama.NewContextParams(nCtx, cfg.BatchSize, cfg.Parallel, cfg.Threads, fa, cfg.KVCacheType)
	if cfg.KVPool > 0 {
		if unsafe.Sizeof(params) != sizeofContextParams {
			llama.FreeModel(e.model)
			return nil, fmt.Errorf("kv pool: the binding's context parameters (%d bytes) are not llama.h's (%d)", unsafe.Sizeof(params), sizeofContextParams)
		}
		setKVUnified(&params, true)
	}
	e.lctx, err = llama.NewContextWithModel(e.model, params)
	if err != nil {
		llama.FreeModel(e.model)
		return nil, err
	}
	e.batch, err = llama.NewBatch(cfg.BatchSize, cfg.Parallel, 0)
	if err != nil {
		llama.FreeModel(e.model)
		return nil, err
	}
	e.nVocab = e.model.NumVocab()
	e.pieces, e.pieceOK = make([]string, e.nVocab), make([]bool, e.nVocab)
	e.ends = endTokens(e.model, e.nVocab)
	backend := "cpu"
	if layers > 0 {
		backend = gpus[0].Library
	}
	tmpl, err := readChatTemplate(cfg.ModelPath)
	if err != nil {
		e.batch.Free()
		llama.FreeModel(e.model)
		return nil, err
	}
	fp, err := fingerprint(cfg, layers)
	if err != nil {
		e.batch.Free()
		llama.FreeModel(e.model)
		return nil, fmt.Errorf("model %s: %w", cfg.ModelPath, err)
	}
	e.info = Info{
		Name: cfg.ModelName, Path: cfg.ModelPath, Backend: backend, GPULayers: layers,
		Slots: cfg.Parallel, ContextPerSlot: cfg.ContextPerSlot, KVPool: cfg.KVPool, LoadDuration: time.Since(start),
		ChatTemplate: tmpl, Fingerprint: fp,
	}
	e.incoming = make(chan *sequence, cfg.Parallel+cfg.QueueLength)
	e.stepped.Store(time.Now().UnixNano())
	e.tokenizers = make(chan struct{}, max(1, runtime.NumCPU()))
	sctx, stop := context.WithCancel(context.Background())
	e.stop = stop
	e.done = make(chan struct{})
	go e.schedule(sctx)
	return e, nil
}

// Info describes the loaded model.
func (e *Engine) Info() Info { return e.info }

// Tokenize turns text into tokens, parsing special tokens such as
// <|im_start|>. A run of more than 1024 characters of one class (letters,
// numbers, whitespace, or punctuation and symbols) is tokenized as if it
// were broken after every 1024 of them (one character earlier where that
// one is '<', so that special tokens stay whole); text without such a run
// is tokenized in one piece.
func (e *Engine) Tokenize(text string) ([]int, error) { return e.tokenize(text, true) }

// tokenize is every tokenization's way to llama.cpp. Text with a run longer
// than maxRun goes to llama_tokenize in pieces (see splitRuns), whose
// tokens are concatenated: one long regular-expression match would
// overflow the C++ stack and crash the process. Other text goes in one
// call.
func (e *Engine) tokenize(text string, special bool) ([]int, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	// llama.cpp's UTF-8 decoder throws a C++ exception on some invalid
	// sequences (a lead byte of F5 to FF makes a code point past U+10FFFF),
	// which aborts the process: invalid bytes become U+FFFD first, as the
	// API's JSON decoding already makes them
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	pieces := splitRuns(text, maxRun)
	if pieces == nil {
		return e.model.Tokenize(text, false, special)
	}
	var out []int
	for _, p := range pieces {
		t, err := e.model.Tokenize(p, false, special)
		if err != nil {
			return nil, err
		}
		out = append(out, t...)
	}
	return out, nil
}

// Stats is a snapshot of the scheduler's load.
type Stats struct {
	Running         int `json:"running"`
	Waiting         int `json:"waiting"`
	Slots           int `json:"slots"`
	KVCacheTokens   int `json:"kv_cache_tokens"` // tokens held in the slots' KV cache
	KVCacheCapacity int `json:"kv_cache_capacity"`
	// Preemptions counts the requests preempted since start because the
	// shared KV cache ran short (Config.KVPool; 0 without one).
	Preemptions int64 `json:"preemptions"`
}

// Handle holds an engine once it is loaded (Store); its Stats are zero
// until then. Safe for concurrent use.
type Handle struct{ atomic.Pointer[Engine] }

// Stats is the held engine's, or zero.
func (h *Handle) Stats() Stats {
	if e := h.Load(); e != nil {
		return e.Stats()
	}
	return Stats{}
}

// Stats reads the current load without blocking the scheduler.
func (e *Engine) Stats() Stats {
	run := int(e.running.Load())
	return Stats{
		Running: run, Waiting: max(0, int(e.admitted.Load())-run),
		Slots: e.cfg.Parallel, KVCacheTokens: int(e.kvUsed.Load()),
		KVCacheCapacity: e.capacity(), Preemptions: e.preemptions.Load(),
	}
}

// capacity is the KV cache's tokens, all slots together.
func (e *Engine) capacity() int {
	if e.cfg.KVPool > 0 {
		return e.cfg.KVPool
	}
	return e.cfg.Parallel * e.cfg.ContextPerSlot
}

// Close stops the scheduler, fails what is still in flight with ErrClosed
// and frees the model. It is safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.stop()
		<-e.done
		e.life.Lock()
		defer e.life.Unlock()
		e.closed = true
		e.batch.Free()
		llama.FreeModel(e.model)
	})
	return nil
}
