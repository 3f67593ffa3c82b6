// Package otel owns qwend's OpenTelemetry SDK: the resource, the tracer,
// meter and logger providers with their OTLP exporters, the instruments, the
// GPU gauges and the local outlets of the same measurements (the JSON and
// Prometheus views of /metrics).
package otel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/log"
	lognoop "go.opentelemetry.io/otel/log/noop"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config selects what Setup builds. Everything else comes from the standard
// OTEL_* variables: OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _INSECURE,
// _PROTOCOL (grpc or http/protobuf), OTEL_TRACES_SAMPLER(_ARG),
// OTEL_METRIC_EXPORT_INTERVAL, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES.
type Config struct {
	Enabled        bool // false: no-op providers and no exporters
	ServiceVersion string
	Logger         *slog.Logger // where export trouble is reported
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
}

// Providers holds what Setup built. Shutdown flushes and stops all of it.
type Providers struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	LoggerProvider log.LoggerProvider
	Propagator     propagation.TextMapPropagator
	// Registry holds the Prometheus view of the instruments (nil when off).
	Registry *promclient.Registry

	exportErrors *errorCounter
	shutdowns    []func(context.Context) error
	once         sync.Once
	err          error
}

// ExportErrors counts failed telemetry exports since start.
func (p *Providers) ExportErrors() int64 { return p.exportErrors.n.Load() }

// Protocols accepted in OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Setup builds the providers and installs them as the globals (for
// libraries such as otelhttp that fall back to them).
func Setup(ctx context.Context, cfg Config) (*Providers, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Providers{
		Propagator:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		exportErrors: &errorCounter{log: cfg.Logger, every: time.Minute},
	}
	if !cfg.Enabled {
		// no export; the instruments still feed /metrics (Prometheus text)
		p.TracerProvider = tracenoop.NewTracerProvider()
		p.LoggerProvider = lognoop.NewLoggerProvider()
		p.Registry = promclient.NewRegistry()
		promReader, err := otelprom.New(otelprom.WithRegisterer(p.Registry))
		if err != nil {
			return nil, fmt.Errorf("prometheus reader: %w", err)
		}
		mp := newMeterProvider(resource.NewSchemaless(attribute.String("service.name", "qwend")), promReader)
		p.MeterProvider = mp
		p.shutdowns = []func(context.Context) error{mp.Shutdown}
		return p, nil
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	if protocol == "" {
		protocol = ProtocolGRPC
	}
	if protocol != ProtocolGRPC && protocol != ProtocolHTTP {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want %s or %s", protocol, ProtocolGRPC, ProtocolHTTP)
	}

	version := cfg.ServiceVersion
	if version == "" {
		version = "dev"
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "qwend"), attribute.String("service.version", version)),
		resource.WithHost(), resource.WithTelemetrySDK(), resource.WithProcessPID(),
		resource.WithFromEnv(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("otel resource: %w", err)
	}

	var (
		spanExp   sdktrace.SpanExporter
		metricExp sdkmetric.Exporter
		logExp    sdklog.Exporter
	)
	if protocol == ProtocolGRPC {
		if spanExp, err = otlptracegrpc.New(ctx); err == nil {
			if metricExp, err = otlpmetricgrpc.New(ctx); err == nil {
				logExp, err = otlploggrpc.New(ctx)
			}
		}
	} else {
		if spanExp, err = otlptracehttp.New(ctx); err == nil {
			if metricExp, err = otlpmetrichttp.New(ctx); err == nil {
				logExp, err = otlploghttp.New(ctx)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}

	// Export errors reach the global error handler: count them and log at
	// most once a minute. Exports are asynchronous: a dead collector never
	// blocks a request; spans that do not fit the queue are dropped.
	otel.SetErrorHandler(p.exportErrors)

	// every export gives up after exportTimeout, so that with the collector
	// down nothing keeps retrying long after shutdown
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(spanExp, sdktrace.WithBatchTimeout(time.Second), sdktrace.WithExportTimeout(exportTimeout)))
	p.Registry = promclient.NewRegistry()
	promReader, err := otelprom.New(otelprom.WithRegisterer(p.Registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus reader: %w", err)
	}
	mp := newMeterProvider(res, sdkmetric.NewPeriodicReader(metricExp, sdkmetric.WithTimeout(exportTimeout)), promReader)
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(logExp, sdklog.WithExportTimeout(exportTimeout))))
	p.TracerProvider, p.MeterProvider, p.LoggerProvider = tp, mp, lp
	// shut down in reverse order of use: spans first, then metrics, then logs
	p.shutdowns = []func(context.Context) error{tp.Shutdown, mp.Shutdown, lp.Shutdown}

	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(p.Propagator)
	return p, nil
}

// exportTimeout bounds one export with its retries (the SDKs' default is
// 30 s): with the collector down, a batch is dropped and counted as an
// export error sooner, and nothing outlives shutdown by more than this.
const exportTimeout = 5 * time.Second

// newMeterProvider is Setup's meter provider: the readers, and the views
// that keep client-controlled values off the metrics.
func newMeterProvider(res *resource.Resource, readers ...sdkmetric.Reader) *sdkmetric.MeterProvider {
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithView(httpMetricsView())}
	for _, r := range readers {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	return sdkmetric.NewMeterProvider(opts...)
}

// httpMetricsView applies to every instrument of the otelhttp
// instrumentation (http.server.request.duration, .request.body.size,
// .response.body.size): it keeps only the HTTPMetricAttributes, so that no
// value a client sends (the Host header becomes server.address and
// server.port) makes a series of its own, and it keeps the dropped
// attributes off the exemplars too, where the SDK would otherwise record
// them (and the OpenMetrics exposition show them as exemplar labels).
func httpMetricsView() sdkmetric.View {
	return sdkmetric.NewView(
		sdkmetric.Instrument{Scope: instrumentation.Scope{Name: otelhttp.ScopeName}},
		sdkmetric.Stream{
			AttributeFilter: attribute.NewAllowKeysFilter(HTTPMetricAttributes...),
			ExemplarReservoirProviderSelector: func(agg sdkmetric.Aggregation) exemplar.ReservoirProvider {
				inner := sdkmetric.DefaultExemplarReservoirProviderSelector(agg)
				return func(kept attribute.Set) exemplar.Reservoir { return keptOnly{inner(kept)} }
			},
		})
}

// keptOnly is an exemplar reservoir that records no filtered attributes.
type keptOnly struct{ exemplar.Reservoir }

func (r keptOnly) Offer(ctx context.Context, t time.Time, v exemplar.Value, _ []attribute.KeyValue) {
	r.Reservoir.Offer(ctx, t, v, nil)
}

// SlogHandler sends records to the OTLP log pipeline (no-op when off).
func (p *Providers) SlogHandler() slog.Handler {
	return otelslog.NewHandler("github.com/qwend/qwend", otelslog.WithLoggerProvider(p.LoggerProvider))
}

// Shutdown flushes and stops every provider within ctx's deadline. It is
// safe without telemetry enabled and safe to call twice.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		// in parallel, each under ctx: a collector that is down must not use
		// up the deadline of the first provider and leave the others (and
		// their connections) running
		errs := make([]error, len(p.shutdowns))
		var wg sync.WaitGroup
		for i, f := range p.shutdowns {
			wg.Go(func() { errs[i] = f(ctx) })
		}
		wg.Wait()
		p.err = errors.Join(errs...)
	})
	return p.err
}

// errorCounter is the global OTel error handler: it counts and rate-limits.
type errorCounter struct {
	log   *slog.Logger
	every time.Duration
	n     atomic.Int64
	last  atomic.Int64 // unix nanoseconds of the last log line
}

func (c *errorCounter) Handle(err error) {
	n := c.n.Add(1)
	now := time.Now().UnixNano()
	last := c.last.Load()
	if last != 0 && time.Duration(now-last) < c.every {
		return
	}
	if !c.last.CompareAndSwap(last, now) {
		return
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	c.log.Warn("telemetry export failing; data is dropped, requests are unaffected",
		"error", strings.TrimSpace(msg), "export_errors_total", n)
}
