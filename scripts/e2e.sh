#!/usr/bin/env bash
# The end-to-end test: qwend on the tiny synthetic model exporting to a real
# OpenTelemetry Collector, which feeds a real Jaeger and a real Prometheus.
# Builds (or reuses) the backends, builds qwend, runs the test. The last line
# reads "e2e: N passed, M failed".
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
. "$here/scripts/cgo-env.sh"
backends=$(./scripts/e2e-backends.sh | tail -n 1) || { echo "e2e: 0 passed, 1 failed (backends did not build)"; exit 1; }
go build -trimpath -o bin/qwend ./cmd/qwend || { echo "e2e: 0 passed, 1 failed (qwend did not build)"; exit 1; }
out=$(mktemp)
QWEND_E2E_BACKENDS="$backends" QWEND_E2E_BIN="$here/bin/qwend" \
  go test -count=1 -v -timeout 15m ./e2e/ 2>&1 | tee "$out" | grep -E '^\s*(---|===|ok|FAIL|PASS|panic)|_test.go' 
status=${PIPESTATUS[0]}
passed=$(grep -cE '^\s*--- PASS' "$out")
failed=$(grep -cE '^\s*--- FAIL' "$out")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
rm -f "$out"
echo "e2e: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
