package quality

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/models"
)

// exitError carries a process exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the status the process exits with.
func (e *exitError) ExitCode() int { return e.code }

// couldNotRun is validate's exit status 2: nothing was compared.
func couldNotRun(err error) error { return &exitError{code: 2, err: err} }

const validateUsage = `usage: qwend validate --baseline FILE [--model M] [--prompts FILE] [--update] [--format table|json] [--url URL]

Answers a fixed prompt set greedily (temperature 0, a fixed seed), one
prompt at a time on one slot, each from an empty KV cache, and compares the
output token ids with a stored baseline. --update writes the baseline
instead. Exit status: 0 every prompt matches under the baseline's
settings, 1 a prompt differs or a setting does, 2 nothing could be
compared (a file missing, or the model is not the baseline's).

The same model file, llama.cpp build, hardware and settings give the same
tokens on every run; another batch size, KV cache type, flash attention
mode, backend or CPU changes the last bits of the logits, and greedy
decoding then parts wherever two tokens were that close. The baseline
records all of them; a run under other settings is reported as differing.
--url runs the prompts through a serving qwend's API instead (compared as
text: the API returns no token ids), where other requests share the
batches: a difference there is a hint, not a proof.

flags:
`

// ValidateCommand is qwend validate: it runs the prompt set (in process, or
// through a serving daemon with --url) and compares the answers with a
// baseline, or writes one. version is the daemon's, recorded in the
// baseline. Errors carry ExitCode 2 when nothing could be compared.
func ValidateCommand(ctx context.Context, args []string, stdout, stderr io.Writer, version string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, validateUsage)
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "GGUF path or Ollama name (default: the default synthetic model, as qwend serve)")
	cacheDir := fs.String("cache-dir", "", "where the default synthetic model is kept (default the user cache dir)")
	prompts := fs.String("prompts", "", "prompt set, YAML or JSON (default: the shipped coding prompts)")
	baseline := fs.String("baseline", "", "baseline JSON file (required)")
	var update bool
	fs.BoolVar(&update, "update", false, "run and write the baseline instead of comparing")
	fs.BoolVar(&update, "write-baseline", false, "the same as --update")
	format := fs.String("format", "table", "report format: table or json")
	url := fs.String("url", "", "run through a serving qwend at this URL (http://host:port) instead of in process")
	apiKey := fs.String("api-key", os.Getenv("QWEND_API_KEY"), "with --url, the API key of a daemon started with --keys (default $QWEND_API_KEY)")
	ctxSize := fs.Int("ctx-size", 4096, "context of the one slot, in tokens")
	batch := fs.Int("batch-size", 512, "prompt tokens per step")
	fa := fs.String("flash-attention", "auto", "auto, on or off")
	kv := fs.String("kv-cache-type", "f16", "f16, q8_0 or q4_0")
	gpuLayers := fs.Int("gpu-layers", -1, "layers on the GPU: -1 all, 0 none")
	threads := fs.Int("threads", max(1, min(runtime.NumCPU()-1, 8)), "CPU threads (results do not depend on it; below the core count, as ggml's threads spin)")
	seed := fs.Uint64("seed", 0, "sampling seed (greedy decoding does not draw; recorded)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("validate: unexpected argument %q", fs.Arg(0))
	}
	if *baseline == "" {
		return couldNotRun(errors.New("validate: --baseline is required"))
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("validate: --format %q (want table or json)", *format)
	}
	set, err := LoadPrompts(*prompts)
	if err != nil {
		return couldNotRun(fmt.Errorf("validate: --prompts: %w", err))
	}
	var base *Baseline
	if !update {
		if base, err = ReadBaseline(*baseline); err != nil {
			return couldNotRun(fmt.Errorf("validate: --baseline: %w (run with --update to write one)", err))
		}
	}

	var cur *Baseline
	if *url != "" {
		if update {
			return couldNotRun(errors.New("validate: --update runs in process (the API returns no token ids); drop --url"))
		}
		client := &http.Client{Timeout: 10 * time.Minute}
		if *apiKey != "" {
			client.Transport = bearer{key: *apiKey, next: http.DefaultTransport}
		}
		res, m, err := RunHTTP(ctx, client, *url, set, *seed)
		if err != nil {
			return couldNotRun(fmt.Errorf("validate: %w", err))
		}
		// the daemon's file cannot be hashed from here: compare as the baseline's
		m.Path, m.SHA256, m.Size = *url, base.Model.SHA256, base.Model.Size
		cur = &Baseline{QwendVersion: base.QwendVersion, LlamaBuild: base.LlamaBuild, Model: m,
			Settings: base.Settings, PromptsSHA256: set.SHA256(), Results: res}
	} else {
		// the binding prints llama.cpp's diagnostics when the default
		// logger takes their level: errors only
		slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})))
		m, err := models.Resolve(ctx, models.Options{Model: *model, CacheDir: *cacheDir}, slog.New(slog.DiscardHandler))
		if err != nil {
			return couldNotRun(fmt.Errorf("validate: --model: %w", err))
		}
		if m.Synthetic {
			fmt.Fprintf(stderr, "validate: no --model: the default synthetic model %s (random weights)\n", m.Path)
		}
		settings := Settings{Slots: 1, ContextPerSlot: *ctxSize, BatchSize: *batch, FlashAttention: *fa,
			KVCacheType: *kv, GPULayers: *gpuLayers, Seed: *seed, Threads: *threads}
		if cur, err = runModel(ctx, m, set, settings, version); err != nil {
			return couldNotRun(fmt.Errorf("validate: %w", err))
		}
	}

	if update {
		if err := cur.WriteFile(*baseline); err != nil {
			return couldNotRun(fmt.Errorf("validate: %w", err))
		}
		fmt.Fprintf(stdout, "validate: wrote %s: %d prompts, model %s (sha256 %.16s..., %s)\n",
			*baseline, len(cur.Results), cur.Model.Path, cur.Model.SHA256, cur.Model.Fingerprint)
		return nil
	}
	rep, err := Compare(base, cur)
	if err != nil {
		return couldNotRun(fmt.Errorf("validate: %w", err))
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		WriteReportTable(stdout, rep)
	}
	if !rep.OK() {
		return fmt.Errorf("validate: %d of %d prompts differ from the baseline, %d settings differ", rep.Differed, len(rep.Prompts), len(rep.SettingsDiffer))
	}
	return nil
}

// runModel loads the model with one slot and runs the set.
func runModel(ctx context.Context, m models.Resolved, set *PromptSet, s Settings, version string) (*Baseline, error) {
	sum, size, err := FileSHA256(m.Path)
	if err != nil {
		return nil, err
	}
	e, err := engine.New(ctx, engine.Config{
		ModelPath: m.Path, ModelName: m.Name, Parallel: s.Slots, ContextPerSlot: s.ContextPerSlot, BatchSize: s.BatchSize,
		FlashAttention: s.FlashAttention, KVCacheType: s.KVCacheType, GPULayers: s.GPULayers, Threads: s.Threads, QueueLength: 1,
	})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res, err := Run(ctx, e, set, s.Seed)
	if err != nil {
		return nil, err
	}
	info := e.Info()
	return &Baseline{
		Created: time.Now().UTC().Truncate(time.Second), QwendVersion: version, LlamaBuild: engine.LlamaBuild(),
		Model:    Model{Path: m.Path, SHA256: sum, Size: size, Fingerprint: info.Fingerprint, Backend: info.Backend},
		Settings: s, PromptsSHA256: set.SHA256(), Results: res,
	}, nil
}

// bearer adds an API key to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}
