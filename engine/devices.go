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
*/
import "C"

import "github.com/ollama/ollama/llama"

// BackendDevice is a device ggml can compute on, with its memory.
type BackendDevice struct {
	Name, Description string
	Free, Total       uint64
}

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
		out = append(out, BackendDevice{
			Name: C.GoString(C.ggml_backend_dev_name(d)), Description: C.GoString(C.ggml_backend_dev_description(d)),
			Free: uint64(free), Total: uint64(total),
		})
	}
	return out
}
