module github.com/qwend/qwend

go 1.26.8

require (
	github.com/gen2brain/malgo v0.11.24
	github.com/ollama/ollama v0.24.0
	github.com/x448/float16 v0.8.4
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/trace v1.47.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	golang.org/x/sync v0.17.0 // indirect
)
