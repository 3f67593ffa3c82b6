#!/usr/bin/env bash
# Builds ggml's CUDA backend from the pinned ollama module's own sources and
# installs it where the binding looks at run time: <dir of bin/qwend>/../lib/ollama.
# Needs nvcc and CMake (a CUDA machine or the Dockerfile's cuda stage).
# SRC=<folder> uses sources copied there beforehand (machines without Go).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
arch="${CUDA_ARCHITECTURES:-80;86;89;90}"
src="${SRC:-}"
if [ -z "$src" ]; then
  mod=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
  src="$here/cuda-src"
  rm -rf "$src"; mkdir -p "$src/ml/backend/ggml"
  cp "$mod/CMakeLists.txt" "$mod/CMakePresets.json" "$src/"
  cp -r "$mod/ml/backend/ggml/ggml" "$src/ml/backend/ggml/"
  chmod -R u+w "$src"
fi
build="${BUILD_DIR:-$here/build/cuda}"
echo "cuda: configuring for architectures $arch" >&2
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >&2
echo "cuda: building ggml-cuda (minutes)" >&2
cmake --build "$build" --target ggml-cuda -j"$(nproc)" >&2
dest="${DEST:-$here/lib/ollama}"
mkdir -p "$dest"
find "$build" \( -name 'libggml-cuda.so*' -o -name 'libggml-base.so*' \) -exec cp -P {} "$dest/" \;
ls -la "$dest" >&2
echo "cuda: installed in $dest" >&2
