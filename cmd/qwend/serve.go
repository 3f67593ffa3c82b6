package main

import (
	"context"

	"errors"
	"fmt"
	"github.com/dustin/go-humanize"
	"golang.org/x/net/netutil"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/qwend/qwend/api"
	"github.com/qwend/qwend/api/ollama"
	"github.com/qwend/qwend/api/openai"
	"github.com/qwend/qwend/engine"
	"github.com/qwend/qwend/gpu"
	"github.com/qwend/qwend/logging"
	"github.com/qwend/qwend/models"
	telemetry "github.com/qwend/qwend/otel"
	"github.com/qwend/qwend/quality"
	"github.com/qwend/qwend/usage"
)

func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) (err error) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	diag := logging.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	log := slog.New(diag)

	if cfg.CPUProfile != "" {
		stop, err := telemetry.StartCPUProfile(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile (QWEND_CPU_PROFILE): %w", err)
		}
		defer stop()
	}

	// telemetry first: everything after reports through it
	prov, err := telemetry.Setup(ctx, telemetry.Config{Enabled: cfg.OTel == "on", ServiceVersion: version, Logger: log})
	if err != nil {
		return fmt.Errorf("--otel: %w", err)
	}
	defer func() {
		// flush what is buffered; a collector that is down costs at most this
		sctx, cancel := context.WithTimeout(context.Background(), min(cfg.ShutdownTimeout, 2*time.Second))
		defer cancel()
		if serr := prov.Shutdown(sctx); serr != nil {
			log.Warn("telemetry shutdown", "error", serr)
		}
	}()
	if cfg.OTel == "on" {
		log = slog.New(slog.NewMultiHandler(diag, logging.NewHandler(prov.SlogHandler())))
	}
	// The default logger is also what the llama.cpp binding asks before it
	// prints its own plain-text diagnostics to stderr: keep the log JSON and
	// let those through only at --log-level debug, or when they are errors.
	slog.SetDefault(slog.New(logging.NewJSONHandler(stderr, &slog.HandlerOptions{Level: max(level, slog.LevelError)})))
	if level == slog.LevelDebug {
		slog.SetDefault(log)
	}

	serviceOut := stdout
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("--log-file (QWEND_LOG_FILE): %w", err)
		}
		defer f.Close()
		serviceOut = f
	}
	serviceLog := logging.NewServiceLog(serviceOut)

	var eng engine.Handle // set once the model is loaded
	stats := &eng
	gpus := gpu.New(ctx, gpu.WithLogger(log), gpu.WithFallback(engine.GPUFallback))
	defer gpus.Close()

	m, err := models.Resolve(ctx, models.Options{Model: cfg.Model, Name: cfg.ModelName, CacheDir: cfg.CacheDir, OllamaStore: cfg.ModelsDir}, log)
	switch {
	case errors.Is(err, models.ErrModel):
		return fmt.Errorf("--model (QWEND_MODEL): %w", err)
	case errors.Is(err, models.ErrCacheDir):
		return fmt.Errorf("--cache-dir (QWEND_CACHE_DIR): %w", err)
	case err != nil:
		return err
	}
	meta, err := models.Inspect(m.Path)
	if err != nil {
		return fmt.Errorf("--model (QWEND_MODEL): %w", err)
	}
	kvMemory, _ := humanize.ParseBytes(cfg.KVCacheMemory) // validated with the flags; "" is 0
	plan, err := models.ContextPerSlot(meta, cfg.CtxSize, cfg.Parallel, cfg.KVCacheType, int64(kvMemory), cfg.KVUnified)
	if err != nil {
		return fmt.Errorf("--ctx-size (QWEND_CTX_SIZE): %w", err)
	}
	if cfg.CtxSize == 0 || plan.Pool > 0 {
		log.Info("context per slot", "tokens", plan.PerSlot, "slots", cfg.Parallel, "shared_kv_tokens", plan.Pool, "trained", meta.ContextLength, "why", plan.Reason)
	}
	cfg.CtxSize, cfg.kvPool = plan.PerSlot, plan.Pool
	// the settings are checked: listen now, so /readyz answers while the
	// model loads
	ln := cfg.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return fmt.Errorf("--addr (QWEND_ADDR): %w", err)
		}
	}
	log.InfoContext(ctx, "listening", "addr", ln.Addr().String(), "otel", cfg.OTel)
	acct, closeAccounting, err := api.OpenAccounting(ctx, api.AccountingSettings{Keys: cfg.Keys, Ledger: cfg.Ledger, Prices: cfg.Prices,
		DefaultDailyUSD: cfg.DefaultDailyUSD, DefaultDailyTokens: cfg.DefaultDailyTokens},
		log, prov.LoggerProvider.Logger("github.com/qwend/qwend/api"), flagName)
	if err != nil {
		return err
	}
	defer func() {
		// after the HTTP drain: every request that ended has its row queued
		lctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		closeAccounting(lctx)
	}()
	var ledgerStats func() usage.WriterStats
	if w, ok := acct.Ledger.(*usage.Writer); ok {
		ledgerStats = w.Stats
	}
	drift, stopDrift, err := quality.StartDrift(cfg.Drift, cfg.Ledger, acct.Store, m.Name, log, envName)
	if err != nil {
		return err
	}
	defer stopDrift()
	observer, err := telemetry.NewObserver(telemetry.ObserverConfig{
		Model: m.Name, Meter: prov.MeterProvider, ServiceLog: serviceLog, GPUs: gpus, Engine: stats,
		ExportErrors: prov.ExportErrors, Ledger: ledgerStats, Drift: drift,
	})
	if err != nil {
		return fmt.Errorf("instruments: %w", err)
	}
	defer observer.Close()

	// server.address is this host's name, never the client's Host header
	// (which would make every distinct Host a new metric series)
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "qwend"
	}
	httpOpts := []otelhttp.Option{
		otelhttp.WithTracerProvider(prov.TracerProvider), otelhttp.WithMeterProvider(prov.MeterProvider),
		otelhttp.WithPropagators(prov.Propagator), otelhttp.WithServerName(hostname),
	}
	srv := api.New(api.Config{
		WriteTimeout: cfg.WriteTimeout, StallTimeout: cfg.StallTimeout,
		MetricsNeedKey: cfg.MetricsNeedKey, CORSOrigins: strings.FieldsFunc(cfg.CORSOrigins, func(r rune) bool { return r == ',' || r == ' ' }),
		Model: m.Name, ContextLength: cfg.CtxSize, MaxBodyBytes: cfg.MaxBodyBytes,
		Info: api.ModelInfo{Family: meta.Architecture, Parameters: meta.Parameters, Quantization: meta.FileType,
			Size: meta.Size, Template: meta.ChatTemplate, Digest: models.Digest(ctx, m.Path)}, RequestTimeout: cfg.RequestTimeout,
		CaptureContent: cfg.CaptureContent, Logger: log, Recorder: observer, Accounting: acct,
		Wrap: func(pattern string, h http.Handler) http.Handler {
			return otelhttp.NewHandler(h, pattern, httpOpts...)
		},
	})
	openai.Register(srv)
	ollama.Register(srv, version)
	metrics := telemetry.MetricsHandler(prov, observer, stats, gpus)
	srv.Handle("GET /metrics", metrics.ServeHTTP)

	httpSrv := &http.Server{
		Handler:           api.DropOversizedTraceHeaders(srv),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.ReadTimeout, // the whole request, body included
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(diag, slog.LevelWarn),
	}
	ln = netutil.LimitListener(ln, cfg.MaxConnections)
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	// load the model while /readyz says 503
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	var loadWG sync.WaitGroup
	loadWG.Go(func() {
		e, err := load(loadCtx, cfg, m, log, prov, observer)
		if err != nil {
			serveErr <- err
			return
		}
		eng.Store(e)
		srv.SetEngine(e)
	})

	select {
	case <-ctx.Done():
		log.Info("shutting down: draining requests in flight", "deadline", cfg.ShutdownTimeout)
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	srv.SetReady(false)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := httpSrv.Shutdown(dctx); serr != nil {
		// what is still running is cut: each stream ends with a shutdown
		// error event and is logged and counted like any other request
		cut := srv.Abort()
		log.Warn("drain deadline passed: cutting the requests still in flight", "requests", cut)
		actx, cancelAbort := context.WithTimeout(context.Background(), 2*time.Second)
		if httpSrv.Shutdown(actx) != nil {
			httpSrv.Close()
		}
		cancelAbort()
		if cut > 0 && err == nil {
			err = fmt.Errorf("%d requests were cut at the drain deadline (--shutdown-timeout %s)", cut, cfg.ShutdownTimeout)
		}
	}
	cancelLoad()
	loadWG.Wait()
	if e := eng.Load(); e != nil {
		e.Close()
	}
	log.Info("stopped")
	return err
}

// load loads the model into a new engine, logging its progress by tenths.
func load(ctx context.Context, cfg serveConfig, m models.Resolved, log *slog.Logger, prov *telemetry.Providers, obs engine.Observer) (*engine.Engine, error) {
	log.InfoContext(ctx, "loading model", "model", m.Name, "path", m.Path)
	var lastDecile atomic.Int32
	lastDecile.Store(-1)
	eng, err := engine.New(ctx, engine.Config{
		ModelPath: m.Path, ModelName: m.Name, Parallel: cfg.Parallel, ContextPerSlot: cfg.CtxSize, KVPool: cfg.kvPool,
		GPULayers: cfg.GPULayers, Threads: cfg.Threads, BatchSize: cfg.BatchSize,
		FlashAttention: cfg.FlashAttention, KVCacheType: cfg.KVCacheType, QueueLength: cfg.QueueLength,
		Mmap: cfg.Mmap,
		Progress: func(p float32) {
			if d := int32(p * 10); d > lastDecile.Swap(d) {
				log.Info("loading model", "progress_percent", d*10)
			}
		},
	}, engine.WithTracerProvider(prov.TracerProvider), engine.WithObserver(obs))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", m.Path, err)
	}
	info := eng.Info()
	log.InfoContext(ctx, "model ready", "model", info.Name, "backend", info.Backend, "gpu_layers", info.GPULayers,
		"slots", info.Slots, "ctx_per_slot", info.ContextPerSlot, "load_ms", info.LoadDuration.Milliseconds(),
		"synthetic", m.Synthetic)
	return eng, nil
}
