package engine

/*
#include <stddef.h>
// ggml's device API, linked into the binary by the llama package.
typedef struct ggml_backend_device * ggml_backend_dev_t;
size_t ggml_backend_dev_count(void);
ggml_backend_dev_t ggml_backend_dev_get(size_t index);
const char * ggml_backend_dev_name(ggml_backend_dev_t device);
const char * ggml_backend_dev_description(ggml_backend_dev_t device);
void ggml_backend_dev_memory(ggml_backend_dev_t device, size_t * free, size_t * total);
int ggml_backend_dev_type(ggml_backend_dev_t device); // enum ggml_backend_dev_type
*/
import "C"

import (
	"github.com/ollama/ollama/llama"

	"github.com/qwend/qwend/gpu"
)

// BackendDevice is a device ggml can compute on, with its memory (bytes).
type BackendDevice struct {
	Name, Description string
	// Type is ggml's device type: "cpu" (the host's memory), "gpu"
	// (dedicated memory), "igpu" (an integrated GPU on the host's memory)
	// or "accel" (an accelerator beside the CPU backend, such as BLAS).
	Type        string
	Free, Total uint64
}

// backendDeviceTypes are enum ggml_backend_dev_type's names, in order.
var backendDeviceTypes = []string{"cpu", "gpu", "igpu", "accel"}

// BackendDevices lists ggml's devices (the CPU among them) and their memory:
// the GPU telemetry fallback when NVML is absent.
func BackendDevices() []BackendDevice {
	backendOnce.Do(llama.BackendInit)
	n := int(C.ggml_backend_dev_count())
	out := make([]BackendDevice, 0, n)
	for i := range n {
		d := C.ggml_backend_dev_get(C.size_t(i))
		var free, total C.size_t
		C.ggml_backend_dev_memory(d, &free, &total)
		typ := "unknown"
		if t := int(C.ggml_backend_dev_type(d)); t >= 0 && t < len(backendDeviceTypes) {
			typ = backendDeviceTypes[t]
		}
		out = append(out, BackendDevice{Type: typ,
			Name: C.GoString(C.ggml_backend_dev_name(d)), Description: C.GoString(C.ggml_backend_dev_description(d)),
			Free: uint64(free), Total: uint64(total),
		})
	}
	return out
}

// GPUFallback is the GPU telemetry's fallback without NVML
// (gpu.WithFallback): ggml's devices and their memory, those that are not
// GPUs (the CPU's, the host's memory) marked HostMemory.
func GPUFallback() []gpu.Device {
	var out []gpu.Device
	for i, d := range BackendDevices() {
		out = append(out, gpu.Device{Index: i, Name: d.Description, HostMemory: d.Type != "gpu" && d.Type != "igpu",
			MemoryTotalBytes: d.Total, MemoryFreeBytes: d.Free, MemoryUsedBytes: d.Total - min(d.Free, d.Total)})
	}
	return out
}
