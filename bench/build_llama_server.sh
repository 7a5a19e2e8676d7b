#!/usr/bin/env bash
# Build llama.cpp's own llama-server, the peer the embedded engine is measured
# against, from the very llama.cpp source that the pinned llama-cpp-python
# sdist vendors (so both sides run the same kernels). No PyPI package ships
# the binary. Only the llama-server target is built (~7 minutes on 2 cores);
# the result is cached and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
FLAGS=$(bash bench/cpu_flags.sh)
# The flags name the build, so a build made without them is never reused.
TAG=$(printf '%s' "$FLAGS" | sha256sum | cut -c1-12)
CACHE=${MOONBASE_BENCH_CACHE:-$HOME/.cache/moonbase-bench}/llama-server-$VERSION-$TAG
BIN=$CACHE/build/bin/llama-server
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

# One build at a time per machine (two test runs may ask at once): the second
# waits, then finds the binary.
mkdir -p "$CACHE"
exec 9>"$CACHE.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
if [ ! -d "$CACHE/src" ]; then
  .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$CACHE/sdist" >&2
  mkdir -p "$CACHE/src"
  tar -xzf "$CACHE"/sdist/llama_cpp_python-*.tar.gz -C "$CACHE/src" --strip-components=1
fi
cmake -S "$CACHE/src/vendor/llama.cpp" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" >&2
cmake --build "$CACHE/build" --target llama-server -j "$(nproc)" >&2
echo "$BIN"
