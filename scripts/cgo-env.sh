#!/usr/bin/env bash
# The cgo settings every build of qwend (and of Ollama for the benchmark)
# uses. Sourced: exports them (values already set win). Run with a name:
# prints that one value (the Makefile reads them so).
#  - CGO_CPPFLAGS finds miniaudio.h, which scripts/deps.sh links under build/include.
#  - On x86-64, -march=x86-64-v3 (AVX2, FMA; Haswell and Zen onwards) lets
#    ggml's CPU kernels use their SIMD paths; the binding's own cgo flags
#    build for baseline x86-64 otherwise. QWEND_CPU_FLAGS overrides it
#    (empty for baseline).
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${QWEND_CPU_FLAGS+set}" ]; then
  case "$(uname -m)" in
    x86_64|amd64) QWEND_CPU_FLAGS="-march=x86-64-v3" ;;
    *) QWEND_CPU_FLAGS="" ;;
  esac
fi
_cppflags="-I$_here/build/include"
_cflags="-O2 -g $QWEND_CPU_FLAGS -Wno-deprecated-declarations"
_cxxflags="-O2 -g $QWEND_CPU_FLAGS"
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    CGO_CPPFLAGS) echo "$_cppflags" ;;
    CGO_CFLAGS) echo "$_cflags" ;;
    CGO_CXXFLAGS) echo "$_cxxflags" ;;
    *) echo "usage: $0 CGO_CPPFLAGS|CGO_CFLAGS|CGO_CXXFLAGS" >&2; exit 2 ;;
  esac
else
  export CGO_ENABLED=1
  export CGO_CPPFLAGS="${CGO_CPPFLAGS:-$_cppflags}"
  export CGO_CFLAGS="${CGO_CFLAGS:-$_cflags}"
  export CGO_CXXFLAGS="${CGO_CXXFLAGS:-$_cxxflags}"
fi
