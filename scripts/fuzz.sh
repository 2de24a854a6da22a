#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (+ASan/UBSan) and runs each for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${1:-60}"
BUILD="$ROOT/build-fuzz"
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOCKETLM_FUZZ=ON \
  -DPOCKETLM_BUILD_TESTS=ON -DPOCKETLM_NATIVE=ON >/dev/null
ninja -C "$BUILD" -j"$(nproc)" fuzz_gguf fuzz_model fuzz_tokenizer fuzz_imatrix fuzz_logits_file fuzz_plan fuzz_openai_request fuzz_calib_stats fuzz_tune_space
for target in fuzz_gguf fuzz_model fuzz_tokenizer fuzz_imatrix fuzz_logits_file fuzz_plan fuzz_openai_request fuzz_calib_stats fuzz_tune_space; do
  corpus="$BUILD/corpus-$target"
  mkdir -p "$corpus"
  seeds="$ROOT/tests/fuzz/seeds/$target"
  echo "[fuzz] $target for ${SECS}s"
  "$BUILD/tests/fuzz/$target" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD/" "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) 2>&1 | tail -12
done
