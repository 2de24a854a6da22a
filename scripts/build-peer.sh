#!/usr/bin/env bash
# Builds the peer: llama.cpp's own tools and libraries, from the source that npm's node-llama-cpp@3.22.1
# ships as a git bundle, into the git-ignored folder .peer/. Tests and benchmarks compare against it in
# the same run. Idempotent: does nothing when the build is already there.
#   .peer/src     llama.cpp source (cloned from the bundle)
#   .peer/build   cmake build: bin/llama-completion, llama-perplexity, llama-quantize, ... and libllama.so
# The build is made once per machine: .peer is a link to a cache folder keyed by the version and the CPU
# flags (POCKETLM_CACHE_DIR, default ~/.cache/pocketlm), so a clean clone (CI) reuses it instead of spending
# ten minutes rebuilding the same llama.cpp. A .peer that is a real folder (older checkouts) is used as it is.
#
# The AVX2-only peer (the AVX2 table of docs/benchmarks.md: llama.cpp as it runs on a machine without
# AVX-512), beside the first, with just what benchmarks need:
#   POCKETLM_PEER_ISA=avx2 POCKETLM_PEER_DIR=.peer-avx2 scripts/build-peer.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEER="${POCKETLM_PEER_DIR:-$ROOT/.peer}"
PEER_ISA="${POCKETLM_PEER_ISA:-native}"
NLC_VERSION=3.22.1
TOOLS=(llama-completion llama-perplexity llama-quantize llama-imatrix llama-bench llama-tokenize llama-simple
       llama-speculative-simple llama-lookup llama-server)
case "$PEER_ISA" in
  native) ;;
  avx2) TOOLS=(llama-completion llama-bench) ;;
  *) echo "[build-peer] POCKETLM_PEER_ISA=$PEER_ISA: expected native or avx2" >&2; exit 2 ;;
esac

# CPU features: every SIMD extension this machine has, but never AMX. Some VMs report AMX without granting
# programs the tile state, and llama.cpp's AMX kernels then die with SIGILL (llama-bench, llama-perplexity).
# POCKETLM_PEER_ISA=avx2 turns every AVX-512 extension off.
has() {
  if [ "$PEER_ISA" = avx2 ] && [[ "$1" == avx512* ]]; then return 1; fi
  grep -qw "$1" /proc/cpuinfo
}
onoff() { if has "$1"; then echo ON; else echo OFF; fi; }
CPU_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
if [ "$(uname -m)" = x86_64 ]; then
  CPU_FLAGS+=(-DGGML_AVX="$(onoff avx)" -DGGML_AVX2="$(onoff avx2)" -DGGML_BMI2="$(onoff bmi2)" -DGGML_FMA="$(onoff fma)"
              -DGGML_F16C="$(onoff f16c)" -DGGML_AVX512="$(onoff avx512f)" -DGGML_AVX512_VBMI="$(onoff avx512vbmi)"
              -DGGML_AVX512_VNNI="$(onoff avx512_vnni)" -DGGML_AVX512_BF16="$(onoff avx512_bf16)")
else
  CPU_FLAGS=(-DGGML_NATIVE=ON)
fi
STAMP="$NLC_VERSION ${CPU_FLAGS[*]} ${TOOLS[*]}"
if [ -x "$PEER/build/bin/llama-completion" ] && [ "$(cat "$PEER/build/.pocketlm-done" 2>/dev/null)" = "$STAMP" ]; then
  echo "[build-peer] llama.cpp already built in $PEER/build"; exit 0
fi
if [ ! -e "$PEER" ]; then
  CACHE="${POCKETLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm}"
  STORE="$CACHE/peer-$NLC_VERSION-$(echo "${CPU_FLAGS[*]}" | sha256sum | cut -c1-12)"
  mkdir -p "$STORE"
  ln -s "$STORE" "$PEER"
  echo "[build-peer] $PEER -> $STORE"
fi
PEER="$(readlink -f "$PEER")"  # one real path for cmake, whichever clone links to it
if [ -x "$PEER/build/bin/llama-completion" ] && [ "$(cat "$PEER/build/.pocketlm-done" 2>/dev/null)" = "$STAMP" ]; then
  echo "[build-peer] llama.cpp already built in $PEER/build"; exit 0
fi
if [ ! -d "$PEER/src/.git" ]; then
  echo "[build-peer] fetching node-llama-cpp@$NLC_VERSION from npm"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null && tar xzf node-llama-cpp-*.tgz)
  git clone -q "$tmp/package/llama/gitRelease.bundle" "$PEER/src"
  cp "$tmp/package/llama/llama.cpp.info.json" "$PEER/" 2>/dev/null || true
  rm -rf "$tmp"
fi
echo "[build-peer] configuring llama.cpp (CPU: ${CPU_FLAGS[*]})"
cmake -S "$PEER/src" -B "$PEER/build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${CPU_FLAGS[@]}" \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON \
  -DBUILD_SHARED_LIBS=ON >"$PEER/configure.log" 2>&1 || { tail -30 "$PEER/configure.log"; exit 1; }
all_targets="$(ninja -C "$PEER/build" -t targets all 2>/dev/null | cut -d: -f1)"
targets=()
for t in "${TOOLS[@]}"; do
  if grep -qx "$t" <<<"$all_targets"; then targets+=("$t"); else echo "[build-peer] note: no target $t in this llama.cpp"; fi
done
echo "[build-peer] building ${targets[*]} (about ten minutes on 2 cores; log: $PEER/build.log)"
ninja -C "$PEER/build" "${targets[@]}" >"$PEER/build.log" 2>&1 || { tail -30 "$PEER/build.log"; exit 1; }
echo "$STAMP" > "$PEER/build/.pocketlm-done"
echo "[build-peer] ok: $PEER/build/bin"
