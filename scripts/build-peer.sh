#!/usr/bin/env bash
# Builds the peer: llama.cpp's own tools and libraries, from the source that npm's node-llama-cpp@3.22.1
# ships as a git bundle, into the git-ignored folder .peer/. Tests and benchmarks compare against it in
# the same run. Idempotent: does nothing when the build is already there.
#   .peer/src     llama.cpp source (cloned from the bundle)
#   .peer/build   cmake build: bin/llama-completion, llama-perplexity, llama-quantize, ... and libllama.so
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEER="$ROOT/.peer"
NLC_VERSION=3.22.1
TOOLS=(llama-completion llama-perplexity llama-quantize llama-imatrix llama-bench llama-tokenize llama-cli llama-simple)

if [ -x "$PEER/build/bin/llama-completion" ] && [ -x "$PEER/build/bin/llama-quantize" ] && [ -f "$PEER/build/.pocketlm-done" ]; then
  echo "[build-peer] llama.cpp already built in $PEER/build"; exit 0
fi
mkdir -p "$PEER"
if [ ! -d "$PEER/src/.git" ]; then
  echo "[build-peer] fetching node-llama-cpp@$NLC_VERSION from npm"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null && tar xzf node-llama-cpp-*.tgz)
  git clone -q "$tmp/package/llama/gitRelease.bundle" "$PEER/src"
  cp "$tmp/package/llama/llama.cpp.info.json" "$PEER/" 2>/dev/null || true
  rm -rf "$tmp"
fi
echo "[build-peer] configuring llama.cpp (CPU, native)"
cmake -S "$PEER/src" -B "$PEER/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DBUILD_SHARED_LIBS=ON >"$PEER/configure.log" 2>&1 || { tail -30 "$PEER/configure.log"; exit 1; }
echo "[build-peer] building ${TOOLS[*]} (about ten minutes on 2 cores; log: $PEER/build.log)"
all_targets="$(ninja -C "$PEER/build" -t targets all 2>/dev/null | cut -d: -f1)"
targets=()
for t in "${TOOLS[@]}"; do
  if grep -qx "$t" <<<"$all_targets"; then targets+=("$t"); else echo "[build-peer] note: no target $t in this llama.cpp"; fi
done
ninja -C "$PEER/build" "${targets[@]}" >"$PEER/build.log" 2>&1 || { tail -30 "$PEER/build.log"; exit 1; }
touch "$PEER/build/.pocketlm-done"
echo "[build-peer] ok: $PEER/build/bin"
