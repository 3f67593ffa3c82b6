package gpu

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

func h100(util uint32) *mock.Device {
	return &mock.Device{
		GetNameFunc:             func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3", nvml.SUCCESS },
		GetUUIDFunc:             func() (string, nvml.Return) { return "GPU-1234", nvml.SUCCESS },
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: util, Memory: 10}, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 80 << 30, Free: 60 << 30, Used: 20 << 30}, nvml.SUCCESS
		},
		GetTemperatureFunc: func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 41, nvml.SUCCESS },
		GetPowerUsageFunc:  func() (uint32, nvml.Return) { return 123456, nvml.SUCCESS },
		GetClockInfoFunc: func(c nvml.ClockType) (uint32, nvml.Return) {
			if c != nvml.CLOCK_SM {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return 1980, nvml.SUCCESS
		},
	}
}

func TestSampleReadsEveryField(t *testing.T) {
	dev := h100(87)
	shut := 0
	lib := &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { shut++; return nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(int) (nvml.Device, nvml.Return) { return dev, nvml.SUCCESS },
	}
	s := New(context.Background(), WithLibrary(lib))
	if !s.Available() {
		t.Fatal("NVML should be available")
	}
	got := s.Sample().Devices
	want := Device{Index: 0, UUID: "GPU-1234", Name: "NVIDIA H100 80GB HBM3", UtilizationPercent: 87,
		MemoryUsedBytes: 20 << 30, MemoryFreeBytes: 60 << 30, MemoryTotalBytes: 80 << 30,
		TemperatureC: 41, PowerWatts: 123.456, SMClockMHz: 1980}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("devices %+v, want %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || shut != 1 {
		t.Fatalf("second close: err %v, shutdowns %d", err, shut)
	}
}

func TestPartialReadingsKeepTheRest(t *testing.T) {
	dev := h100(5)
	dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	lib := &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return 1, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(int) (nvml.Device, nvml.Return) { return dev, nvml.SUCCESS },
	}
	d := New(context.Background(), WithLibrary(lib)).Sample().Devices[0]
	if d.PowerWatts != 0 || d.UtilizationPercent != 5 || d.MemoryTotalBytes == 0 {
		t.Errorf("device %+v", d)
	}
}

func TestFallbackWithoutNVML(t *testing.T) {
	var logs bytes.Buffer
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	fb := func() []Device {
		return []Device{{Index: 0, Name: "CPU", MemoryTotalBytes: 100, MemoryFreeBytes: 40, MemoryUsedBytes: 60}}
	}
	s := New(context.Background(), WithLibrary(lib), WithFallback(fb), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if s.Available() {
		t.Fatal("NVML reported available")
	}
	for range 3 {
		d := s.Sample().Devices
		if len(d) != 1 || !d[0].NVMLUnavailable || d[0].MemoryTotalBytes != 100 {
			t.Fatalf("fallback devices %+v", d)
		}
	}
	if n := strings.Count(logs.String(), "NVML unavailable"); n != 1 {
		t.Errorf("absence logged %d times, want once:\n%s", n, logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRealLibraryWithoutDriverFallsBack(t *testing.T) {
	// On a machine without the NVIDIA driver this is the CI path; with one,
	// the real devices answer.
	s := New(context.Background(), WithFallback(func() []Device { return []Device{{Name: "cpu"}} }))
	defer s.Close()
	snap := s.Sample()
	if len(snap.Devices) == 0 {
		t.Fatal("no devices at all")
	}
	if !s.Available() && !snap.Devices[0].NVMLUnavailable {
		t.Error("fallback device not marked nvml_unavailable")
	}
	t.Logf("available=%v devices=%+v", s.Available(), snap.Devices)
}
