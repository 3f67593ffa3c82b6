#!/usr/bin/env bash
# Builds (or reuses) the real observability backends the end-to-end test runs
# against: an OpenTelemetry Collector made by the collector builder, Jaeger v2,
# and Prometheus. Binaries are cached under a folder named by their versions.
# Prints the cache folder on its last line.
set -euo pipefail

COLLECTOR_VERSION=0.161.0
JAEGER_MODULE_VERSION=v1.76.0
CACHE="${QWEND_E2E_CACHE:-$HOME/.cache/qwend-e2e}/otelcol-${COLLECTOR_VERSION}_jaeger-${JAEGER_MODULE_VERSION}"
here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$CACHE"

log() { echo "e2e-backends: $*" >&2; }

if [ ! -x "$CACHE/otelcol-qwend" ]; then
  log "building the OpenTelemetry Collector ${COLLECTOR_VERSION} (first time: 5 to 7 minutes)"
  GOBIN="$CACHE/tools" go install "go.opentelemetry.io/collector/cmd/builder@v${COLLECTOR_VERSION}"
  work="$CACHE/collector-src"
  rm -rf "$work"; mkdir -p "$work"
  sed "s#@VERSION@#${COLLECTOR_VERSION}#g; s#@OUT@#${work}#g" \
    "$here/e2e/otelcol-builder.yaml" > "$work/manifest.yaml"
  "$CACHE/tools/builder" --config "$work/manifest.yaml" >&2
  cp "$work/otelcol-qwend" "$CACHE/otelcol-qwend.tmp"
  mv "$CACHE/otelcol-qwend.tmp" "$CACHE/otelcol-qwend"
  rm -rf "$work"
fi

if [ ! -x "$CACHE/jaeger" ]; then
  log "building Jaeger v2 (module ${JAEGER_MODULE_VERSION}; first time: about 8 minutes)"
  dir=$(go mod download -json "github.com/jaegertracing/jaeger@${JAEGER_MODULE_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { log "could not download github.com/jaegertracing/jaeger@${JAEGER_MODULE_VERSION}"; exit 1; }
  (cd "$dir" && GOFLAGS=-mod=mod go build -o "$CACHE/jaeger.tmp" ./cmd/jaeger) >&2
  mv "$CACHE/jaeger.tmp" "$CACHE/jaeger"
fi

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  log "prometheus and promtool are missing: run scripts/deps.sh"
  exit 1
fi
echo "$CACHE"
