package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/models"
	"github.com/qwend/qwend/quality"
)

// serveConfig is every setting of `qwend serve`. Precedence: defaults, then
// QWEND_* environment variables, then flags.
type serveConfig struct {
	Model              string
	ModelName          string
	Addr               string
	Parallel           int
	CtxSize            int    // 0: the model's trained context, within KVCacheMemory
	KVCacheMemory      string // KV cache budget ("4GiB"); "": a quarter of the available memory
	KVUnified          string // auto, on, off (models.ContextPerSlot)
	kvPool             int    // the shared KV cache's tokens the plan gave (0: none)
	GPULayers          int
	Threads            int
	BatchSize          int
	FlashAttention     string
	KVCacheType        string
	QueueLength        int
	RequestTimeout     time.Duration
	WriteTimeout       time.Duration // longest a write to a client may block
	ReadTimeout        time.Duration // longest reading one request, body included
	MaxConnections     int
	StallTimeout       time.Duration // /healthz fails after the scheduler stalls this long
	ShutdownTimeout    time.Duration
	MaxBodyBytes       int64
	LogFile            string
	LogLevel           string
	OTel               string
	CaptureContent     bool
	Mmap               bool
	ModelsDir          string  // the Ollama model store
	CacheDir           string  // where the default synthetic model is written
	CPUProfile         string  // write a CPU profile of the whole run here
	Keys               string  // API keys file; "" lets anyone in
	MetricsNeedKey     bool    // with --keys, /metrics needs a key too
	CORSOrigins        string  // comma-separated origins allowed from browsers
	Ledger             string  // SQLite path, postgres:// URL, or "off"; "" is the default SQLite file
	Prices             string  // prices file; "" prices nothing
	DefaultDailyUSD    float64 // a user's daily budget in USD when their key sets none; 0: none
	DefaultDailyTokens int64   // the same in tokens
	Drift              quality.DriftFlags

	listener net.Listener // tests: serve on this instead of Addr
}

func envName(flagName string) string {
	return "QWEND_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagName is how errors name a setting: its flag and its variable.
func flagName(flag string) string { return "--" + flag + " (" + envName(flag) + ")" }

func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Model, "model", "", "GGUF path or Ollama model name (e.g. qwen2.5-coder:1.5b); empty: a tiny synthetic model")
	fs.StringVar(&c.ModelName, "model-name", "", "model id served to clients (default: the Ollama name or the file's stem)")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address host:port (0.0.0.0:8080 for every interface)")
	fs.IntVar(&c.Parallel, "parallel", 4, "slots: sequences decoded together")
	fs.IntVar(&c.CtxSize, "ctx-size", 0, "context tokens per slot (0: the model's trained context, as far as --kv-cache-memory holds it)")
	fs.StringVar(&c.KVCacheMemory, "kv-cache-memory", "", "KV cache memory for all slots, e.g. 4GiB (empty: a quarter of the available memory)")
	fs.IntVar(&c.GPULayers, "gpu-layers", -1, "layers on the GPU: -1 all (when a GPU backend is present), 0 none")
	fs.IntVar(&c.Threads, "threads", defaultThreads(), "CPU threads for ggml")
	fs.IntVar(&c.BatchSize, "batch-size", 512, "prompt tokens per slot per step")
	fs.StringVar(&c.FlashAttention, "flash-attention", "auto", "flash attention: auto, on, off")
	fs.StringVar(&c.KVCacheType, "kv-cache-type", "f16", "KV cache type: f16, q8_0, q4_0")
	fs.StringVar(&c.KVUnified, "kv-unified", "auto", "slots share one KV cache, a request up to the trained context: auto (when the memory cannot give each slot that), on, off")
	fs.IntVar(&c.QueueLength, "queue-length", 64, "requests that may wait for a slot before 429")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Minute, "longest time one request may take")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 30*time.Second, "a client that reads nothing for this long is cut and its slot freed")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", time.Minute, "longest time to read one request, body included")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", 2*time.Minute, "/healthz fails when the scheduler makes no progress this long with requests pending")
	fs.IntVar(&c.MaxConnections, "max-connections", 1024, "open connections at most; more wait to be accepted")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 8<<20, "largest request body accepted")
	fs.StringVar(&c.LogFile, "log-file", "", "service log: one JSON line per inference (empty: standard output)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "diagnostic log level: debug, info, warn, error")
	fs.StringVar(&c.OTel, "otel", "on", "OpenTelemetry export: on (configured by OTEL_* variables) or off")
	fs.BoolVar(&c.CaptureContent, "capture-content", false, "record prompt and completion text (truncated) on spans")
	fs.BoolVar(&c.Mmap, "mmap", false, "map the weights from the file instead of loading them (faster start, slower CPU decoding)")
	fs.StringVar(&c.ModelsDir, "ollama-models", "", "Ollama model store (default $OLLAMA_MODELS, else ~/.ollama/models)")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "where the default synthetic model is kept (default the user cache dir)")
	fs.StringVar(&c.CPUProfile, "cpu-profile", "", "write a pprof CPU profile from start to shutdown to this file (empty: none)")
	fs.StringVar(&c.Keys, "keys", "", "API keys file (qwend keys add): every API request then needs Authorization: Bearer <key>")
	fs.BoolVar(&c.MetricsNeedKey, "metrics-key", false, "with --keys, GET /metrics needs a key too")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated web origins allowed to call the API from a browser (* for any; empty: none)")
	fs.StringVar(&c.Ledger, "ledger", "", "usage ledger: a SQLite file, a postgres:// URL, or off (default: ledger.db under the user's data directory)")
	fs.StringVar(&c.Prices, "prices", "", "prices file (YAML): the cost of each request (empty: cost 0)")
	fs.Float64Var(&c.DefaultDailyUSD, "default-daily-usd", 0, "each user's daily budget in US dollars when their key sets none (0: none)")
	fs.Int64Var(&c.DefaultDailyTokens, "default-daily-tokens", 0, "each user's daily budget in tokens when their key sets none (0: none)")
	c.Drift.Register(fs)

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.ModelsDir == "" {
		c.ModelsDir = getenv("OLLAMA_MODELS")
	}
	return c, c.validate()
}

// defaultThreads leaves a core for the HTTP side: ggml's threads spin, and
// on a small machine a thread per core slows decoding badly.
func defaultThreads() int {
	return max(1, runtime.NumCPU()/2)
}

func (c serveConfig) validate() error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flagName, envName(flagName), fmt.Sprintf(format, a...)))
	}
	if c.Addr == "" || !strings.Contains(c.Addr, ":") {
		bad("addr", "%q is not host:port", c.Addr)
	}
	if c.Parallel < 1 || c.Parallel > 256 {
		bad("parallel", "%d is not in [1, 256]", c.Parallel)
	}
	if c.CtxSize != 0 && c.CtxSize < 16 {
		bad("ctx-size", "%d is below 16", c.CtxSize)
	}
	if c.KVCacheMemory != "" {
		if _, err := humanize.ParseBytes(c.KVCacheMemory); err != nil {
			bad("kv-cache-memory", "%q is not a size such as 4GiB", c.KVCacheMemory)
		}
	}
	if c.GPULayers < -1 {
		bad("gpu-layers", "%d is below -1", c.GPULayers)
	}
	if c.Threads < 1 {
		bad("threads", "%d is below 1", c.Threads)
	}
	if c.BatchSize < 1 {
		bad("batch-size", "%d is below 1", c.BatchSize)
	}
	if c.QueueLength < 0 {
		bad("queue-length", "%d is negative", c.QueueLength)
	}
	if !slices.Contains(engine.FlashAttentionModes, c.FlashAttention) {
		bad("flash-attention", "%q is not one of %s", c.FlashAttention, strings.Join(engine.FlashAttentionModes, ", "))
	}
	if !slices.Contains(models.KVUnifiedModes, c.KVUnified) {
		bad("kv-unified", "%q is not one of %s", c.KVUnified, strings.Join(models.KVUnifiedModes, ", "))
	}
	if !slices.Contains(engine.KVCacheTypes, c.KVCacheType) {
		bad("kv-cache-type", "%q is not one of %s", c.KVCacheType, strings.Join(engine.KVCacheTypes, ", "))
	}
	if c.RequestTimeout <= 0 {
		bad("request-timeout", "%s is not positive", c.RequestTimeout)
	}
	if c.WriteTimeout <= 0 {
		bad("write-timeout", "%s is not positive", c.WriteTimeout)
	}
	if c.ReadTimeout <= 0 {
		bad("read-timeout", "%s is not positive", c.ReadTimeout)
	}
	if c.StallTimeout <= 0 {
		bad("stall-timeout", "%s is not positive", c.StallTimeout)
	}
	if c.MaxConnections < 1 {
		bad("max-connections", "%d is below 1", c.MaxConnections)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "%s is not positive", c.ShutdownTimeout)
	}
	if c.MaxBodyBytes < 1024 {
		bad("max-body-bytes", "%d is below 1024", c.MaxBodyBytes)
	}
	if c.DefaultDailyUSD < 0 {
		bad("default-daily-usd", "%g is negative", c.DefaultDailyUSD)
	}
	if c.DefaultDailyTokens < 0 {
		bad("default-daily-tokens", "%d is negative", c.DefaultDailyTokens)
	}
	if err := c.Drift.Check(envName); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.OTel {
	case "on", "off":
	default:
		bad("otel", "%q is not on or off", c.OTel)
	}
	return errors.Join(errs...)
}
