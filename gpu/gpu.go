// Package gpu reads GPU telemetry through NVML (go-nvml). When NVML cannot
// be loaded (no driver, a CPU-only machine) it reports what a fallback
// function gives, marked nvml_unavailable, and says so once in the log.
package gpu

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Device is one GPU's readings. Fields NVML could not read are zero.
type Device struct {
	Index              int     `json:"index"`
	UUID               string  `json:"uuid,omitempty"`
	Name               string  `json:"name"`
	UtilizationPercent float64 `json:"utilization_gpu_percent"`
	MemoryUsedBytes    uint64  `json:"memory_used_bytes"`
	MemoryFreeBytes    uint64  `json:"memory_free_bytes"`
	MemoryTotalBytes   uint64  `json:"memory_total_bytes"`
	TemperatureC       float64 `json:"temperature_celsius,omitempty"`
	PowerWatts         float64 `json:"power_watts,omitempty"`
	SMClockMHz         float64 `json:"sm_clock_mhz,omitempty"`
	NVMLUnavailable    bool    `json:"nvml_unavailable,omitempty"`
	// HostMemory marks a fallback device that is not a GPU (ggml's CPU
	// device, whose memory is the host's): listed in the /metrics JSON as
	// the fallback has it, but kept out of the hw.gpu.* series.
	HostMemory bool `json:"-"`
}

// Snapshot is every device at one moment.
type Snapshot struct {
	Devices []Device  `json:"devices"`
	At      time.Time `json:"-"`
}

// Fallback lists devices without NVML (for example the ggml backend's
// device memory). It may return nil.
type Fallback func() []Device

// Sampler reads devices on demand. It is safe for concurrent use.
type Sampler struct {
	lib      nvml.Interface
	fallback Fallback
	log      *slog.Logger
	maxAge   time.Duration

	mu      sync.Mutex
	ok      bool // NVML initialised
	closed  bool
	cached  Snapshot
	devices []nvml.Device
}

// Option configures a Sampler.
type Option func(*Sampler)

// WithLibrary replaces the NVML library (tests use go-nvml's mock).
func WithLibrary(lib nvml.Interface) Option { return func(s *Sampler) { s.lib = lib } }

// WithFallback sets what is reported when NVML is unavailable.
func WithFallback(f Fallback) Option { return func(s *Sampler) { s.fallback = f } }

// WithLogger sets where the one-time absence of NVML is logged.
func WithLogger(l *slog.Logger) Option { return func(s *Sampler) { s.log = l } }

// WithMaxAge lets Cached reuse a snapshot up to this old (default 1 s).
func WithMaxAge(d time.Duration) Option { return func(s *Sampler) { s.maxAge = d } }

// New initialises NVML. Failure is not an error: the sampler then reports
// the fallback devices with NVMLUnavailable set.
func New(ctx context.Context, opts ...Option) *Sampler {
	s := &Sampler{log: slog.Default(), maxAge: time.Second}
	for _, o := range opts {
		o(s)
	}
	if s.lib == nil {
		s.lib = nvml.New()
	}
	if ret := s.lib.Init(); ret != nvml.SUCCESS {
		s.log.WarnContext(ctx, "NVML unavailable: GPU telemetry falls back to the ggml backend's device memory",
			"nvml_error", nvml.ErrorString(ret))
		return s
	}
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		s.log.WarnContext(ctx, "NVML cannot count devices", "nvml_error", nvml.ErrorString(ret))
		s.lib.Shutdown()
		return s
	}
	for i := range n {
		d, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			s.log.WarnContext(ctx, "NVML device unreadable", "index", i, "nvml_error", nvml.ErrorString(ret))
			continue
		}
		s.devices = append(s.devices, d)
	}
	s.ok = true
	s.log.InfoContext(ctx, "NVML ready", "devices", len(s.devices))
	return s
}

// Available reports whether NVML answered.
func (s *Sampler) Available() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok && !s.closed
}

// Sample reads every device now.
func (s *Sampler) Sample() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sampleLocked()
}

// Cached returns a snapshot no older than the sampler's max age, reading
// the devices only when the last one is stale: cheap enough per request.
func (s *Sampler) Cached() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cached.At.IsZero() && time.Since(s.cached.At) < s.maxAge {
		return s.cached
	}
	return s.sampleLocked()
}

func (s *Sampler) sampleLocked() Snapshot {
	snap := Snapshot{At: time.Now(), Devices: []Device{}}
	if !s.ok || s.closed {
		if s.fallback != nil {
			for _, d := range s.fallback() {
				d.NVMLUnavailable = true
				snap.Devices = append(snap.Devices, d)
			}
		}
		s.cached = snap
		return snap
	}
	for i, h := range s.devices {
		d := Device{Index: i}
		if v, ret := h.GetName(); ret == nvml.SUCCESS {
			d.Name = v
		}
		if v, ret := h.GetUUID(); ret == nvml.SUCCESS {
			d.UUID = v
		}
		if u, ret := h.GetUtilizationRates(); ret == nvml.SUCCESS {
			d.UtilizationPercent = float64(u.Gpu)
		}
		if m, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
			d.MemoryUsedBytes, d.MemoryFreeBytes, d.MemoryTotalBytes = m.Used, m.Free, m.Total
		}
		if v, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			d.TemperatureC = float64(v)
		}
		if v, ret := h.GetPowerUsage(); ret == nvml.SUCCESS {
			d.PowerWatts = float64(v) / 1000
		}
		if v, ret := h.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
			d.SMClockMHz = float64(v)
		}
		snap.Devices = append(snap.Devices, d)
	}
	s.cached = snap
	return snap
}

// Close shuts NVML down. Safe without a successful init and safe twice.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.ok {
		if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
			return nvmlError(ret)
		}
	}
	return nil
}

type nvmlError nvml.Return

func (e nvmlError) Error() string { return "nvml: " + nvml.ErrorString(nvml.Return(e)) }
