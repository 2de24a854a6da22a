#!/usr/bin/env bash
# README command 2: installs everything (packages, models, the llama.cpp peer) and runs the whole suite:
#   1. Release build with -Werror, every GoogleTest test through ctest (peer comparisons included)
#   2. the ARM kernel paths (NEON, dotprod, i8mm), cross-built and checked under qemu-aarch64 (test-arm.sh)
#   3. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   4. libFuzzer targets (GGUF reader, tokenizer) for a bounded time with the sanitizers
# Set POCKETLM_FUZZ_SECONDS (default 60 per target) or POCKETLM_SKIP_SANITIZE=1 / POCKETLM_SKIP_FUZZ=1 /
# POCKETLM_SKIP_ARM=1 to trim.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PASSED=0; FAILED=0
# Runs ctest in a build dir, adds its counts to the totals, and fails the script when a test failed.
run_ctest() {
  local dir="$1"; shift
  local log; log="$(mktemp)"
  set +e
  (cd "$dir" && env "$@" ctest --output-on-failure -j1) 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local total failed
  total="$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)"
  failed="$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)"
  rm -f "$log"
  PASSED=$((PASSED + ${total:-0} - ${failed:-0})); FAILED=$((FAILED + ${failed:-0}))
  if [ "$rc" != 0 ]; then echo "tests: $PASSED passed, $FAILED failed"; exit "$rc"; fi
}
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/fetch-models.sh"
"$ROOT/scripts/build-peer.sh"

echo "== [1/4] release build (-Werror) and tests =="
"$ROOT/scripts/build.sh" "$ROOT/build"
run_ctest "$ROOT/build" POCKETLM_RELEASE=1

if [ -z "${POCKETLM_SKIP_ARM:-}" ]; then
  echo "== [2/4] ARM kernels (cross build, qemu-aarch64) =="
  arm_log="$(mktemp)"
  set +e
  "$ROOT/scripts/test-arm.sh" "$ROOT/build-arm" 2>&1 | tee "$arm_log"
  arm_rc=${PIPESTATUS[0]}
  set -e
  arm_line="$(grep '^arm tests:' "$arm_log" | tail -1)"
  rm -f "$arm_log"
  arm_passed="$(sed -n 's/^arm tests: \([0-9]*\) passed.*/\1/p' <<<"$arm_line")"
  arm_failed="$(sed -n 's/.* \([0-9]*\) failed$/\1/p' <<<"$arm_line")"
  if [ "$arm_rc" != 0 ] && [ "${arm_failed:-0}" = 0 ]; then arm_failed=1; fi  # the build itself failed
  PASSED=$((PASSED + ${arm_passed:-0})); FAILED=$((FAILED + ${arm_failed:-0}))
  if [ "$arm_rc" != 0 ]; then echo "tests: $PASSED passed, $FAILED failed"; exit "$arm_rc"; fi
fi

if [ -z "${POCKETLM_SKIP_SANITIZE:-}" ]; then
  echo "== [3/4] ASan + UBSan build and tests =="
  "$ROOT/scripts/build.sh" "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOCKETLM_SANITIZE=ON
  run_ctest "$ROOT/build-asan" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    POCKETLM_SANITIZED=1
fi

if [ -z "${POCKETLM_SKIP_FUZZ:-}" ]; then
  echo "== [4/4] fuzzing (libFuzzer + ASan/UBSan) =="
  "$ROOT/scripts/fuzz.sh" "${POCKETLM_FUZZ_SECONDS:-60}"
fi
echo "all tests passed (release, ARM under qemu and sanitizer suites; fuzzers found nothing)"
echo "tests: $PASSED passed, $FAILED failed"
