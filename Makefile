# qwend: build, run and test. `make run` and `make test` are the quick start.
SHELL := /bin/bash
GO ?= go

export CGO_ENABLED := 1
export CGO_CPPFLAGS := $(shell ./scripts/cgo-env.sh CGO_CPPFLAGS)
export CGO_CFLAGS := $(shell ./scripts/cgo-env.sh CGO_CFLAGS)
export CGO_CXXFLAGS := $(shell ./scripts/cgo-env.sh CGO_CXXFLAGS)

GOFILES := $(shell find . -name '*.go' -not -path './build/*' 2>/dev/null)
ARGS ?=

.PHONY: all build run test unit lint e2e stack-check cuda bench-cpu bench-gpu clean deps

all: build

build/.deps: scripts/deps.sh go.mod go.sum
	./scripts/deps.sh

deps: build/.deps

bin/qwend: build/.deps $(GOFILES) go.mod go.sum
	$(GO) build -trimpath -o $@ ./cmd/qwend

build: bin/qwend

## run: serve on the embedded default model (a tiny synthetic Qwen), or ARGS="--model ..."
run: bin/qwend
	./bin/qwend serve $(ARGS)

## test: lint, unit tests with the race detector, the stack's checks, and the end-to-end test
test: lint unit stack-check e2e

lint: build/.deps
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: build/.deps
	$(GO) test -race -count=1 ./...

## e2e: qwend against a real Collector, Jaeger and Prometheus
e2e: build/.deps
	./scripts/e2e.sh

## stack-check: the compose file validates, the alert rules pass their tests
stack-check: build/.deps
	docker-compose -f docker-compose.yaml config -q
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/tests/qwend.rules_test.yml

cuda:
	./scripts/cuda.sh

## bench-cpu / bench-gpu: qwend against Ollama v0.24.0 on the same model, results in bench/results/
bench-cpu: build/.deps
	./scripts/bench.sh cpu

bench-gpu: build/.deps
	./scripts/bench.sh gpu

clean:
	rm -rf bin build lib
