#!/usr/bin/env bash
# README command 2: installs everything (packages, models, the llama.cpp peer) and runs the whole suite:
#   0. the layer check (scripts/check-layers.py: no #include points up) and the format check
#      (scripts/check-format.sh: every C/C++ file as clang-format-14 writes it)
#   1. Release build with -Werror, every GoogleTest test through ctest (labels unit, e2e, peer, slow)
#   2. the ARM kernel paths (NEON, dotprod, i8mm), cross-built and checked under qemu-aarch64 (test-arm.sh)
#   3. AddressSanitizer + UndefinedBehaviorSanitizer: every `unit` test and the slow tests named below; then
#      ThreadSanitizer on two sessions generating at once on one model (a build of just that test)
#   4. libFuzzer targets (GGUF reader, tokenizer, imatrix, logits file) for a bounded time with the sanitizers
# Each stage's wall time is printed as it ends, and all of them with the total at the end (also on failure).
# Set POCKETLM_FUZZ_SECONDS (default 45 per target) or POCKETLM_SKIP_SANITIZE=1 / POCKETLM_SKIP_TSAN=1 / POCKETLM_SKIP_FUZZ=1 /
# POCKETLM_SKIP_ARM=1 / POCKETLM_SKIP_RELEASE_TESTS=1 (the release build still runs: ARM reuses it) to trim. Only the unit tests (minutes): scripts/build.sh && ctest --test-dir build -L unit
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PASSED=0; FAILED=0

# The tests the sanitizer stage runs besides the unit tests (ctest names; * is a wildcard; the slow and e2e
# ones chosen), each for what only
# it exercises under ASan/UBSan. The other slow, e2e and peer tests repeat these code paths on bigger models
# or compare with llama.cpp; the release stage runs them all.
ASAN_SLOW_TESTS=(
  'SessionKv.SmolLM2Q8CacheIsHalfTheBytesAndCloseToF16'  # slow: the q8 KV cache on a real model, multi-block
  'StoriesReference.*' 'Cli.*'           # e2e: the CLI's run/tokenize/flag and error paths on stories260K
  'CExample.*' 'BadIsaIsAnError'          # e2e: the C example streaming SmolLM2; a bad POCKETLM_ISA is an error
  'PerplexityStoriesBadLogits.*'          # e2e: every corrupt/mismatched logits file the perplexity CLI refuses
  'EvalStories.*'                         # e2e: eval's JSONL/resume/compare paths
  'ImatrixCli.MergingAddsSumsCountsAndDatasets' 'ImatrixCli.TasksAreRenderedAndCollected'
  'ImatrixCli.BadInputsAreClearErrorsThatWriteNothing'  # e2e: imatrix files written, merged, refused
)

STAGE_TIMES=(); STAGE_NAME=""; STAGE_T0=0; T_START=$SECONDS
fmt_time() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
stage() {  # stage NAME: ends the running stage (recording its time) and starts the next
  stage_end
  STAGE_NAME="$1"; STAGE_T0=$SECONDS
  echo "== $1 =="
}
stage_end() {
  if [ -n "$STAGE_NAME" ]; then
    local dt=$((SECONDS - STAGE_T0))
    STAGE_TIMES+=("$(printf '  %-44s %7s' "$STAGE_NAME" "$(fmt_time $dt)")")
    echo "-- $STAGE_NAME: $(fmt_time $dt)"
    STAGE_NAME=""
  fi
}
print_times() {
  stage_end
  echo "stage times (wall):"
  printf '%s\n' "${STAGE_TIMES[@]}"
  printf '  %-44s %7s\n' "total" "$(fmt_time $((SECONDS - T_START)))"
}
trap print_times EXIT

# run_ctest DIR [VAR=VALUE...] [-- ctest args...]: runs ctest in a build dir, adds its counts to the totals,
# and fails the script when a test failed.
run_ctest() {
  local dir="$1"; shift
  local envs=() args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  local log; log="$(mktemp)"
  set +e
  (cd "$dir" && env "${envs[@]}" ctest --output-on-failure -j1 "${args[@]}") 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local total failed
  total="$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)"
  failed="$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)"
  rm -f "$log"
  PASSED=$((PASSED + ${total:-0} - ${failed:-0})); FAILED=$((FAILED + ${failed:-0}))
  if [ "$rc" != 0 ]; then echo "tests: $PASSED passed, $FAILED failed"; exit "$rc"; fi
}

stage "install deps"
"$ROOT/scripts/install-deps.sh"  # python3 among them: the layer check needs it
stage "[0/4] layer and format checks (scripts/check-layers.py, scripts/check-format.sh)"
python3 "$ROOT/scripts/check-layers.py"
bash "$ROOT/scripts/check-format.sh"
stage "models, llama.cpp peer"
"$ROOT/scripts/fetch-models.sh"
"$ROOT/scripts/build-peer.sh"

stage "[1/4] release build (-Werror)"
"$ROOT/scripts/build.sh" "$ROOT/build"
if [ -z "${POCKETLM_SKIP_RELEASE_TESTS:-}" ]; then
  stage "[1/4] release tests (all labels)"
  run_ctest "$ROOT/build" POCKETLM_RELEASE=1
fi

if [ -z "${POCKETLM_SKIP_ARM:-}" ]; then
  stage "[2/4] ARM kernels (cross build, qemu-aarch64)"
  arm_log="$(mktemp)"
  set +e
  "$ROOT/scripts/test-arm.sh" "$ROOT/build-arm" "$ROOT/build" 2>&1 | tee "$arm_log"
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
  stage "[3/4] ASan + UBSan build"
  "$ROOT/scripts/build.sh" "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOCKETLM_SANITIZE=ON
  stage "[3/4] ASan + UBSan tests (unit + ${#ASAN_SLOW_TESTS[@]} slow)"
  ASAN_ENV=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 POCKETLM_SANITIZED=1)
  run_ctest "$ROOT/build-asan" "${ASAN_ENV[@]}" -- -L unit
  slow_regex="^($(IFS='|'; echo "${ASAN_SLOW_TESTS[*]}" | sed 's/[.]/[.]/g; s/[*]/.*/g'))\$"
  run_ctest "$ROOT/build-asan" "${ASAN_ENV[@]}" -- -R "$slow_regex"
fi

if [ -z "${POCKETLM_SKIP_TSAN:-}" ]; then
  # Only the core library and the concurrent-sessions test: a full TSan build would cost as much as ASan's.
  stage "[3/4] ThreadSanitizer: two sessions on one model, the batch scheduler"
  cmake -S "$ROOT" -B "$ROOT/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOCKETLM_WERROR=ON \
    -DPOCKETLM_TSAN=ON >/dev/null
  ninja -C "$ROOT/build-tsan" -j"$(nproc)" pocketlm_concurrency_tests
  run_ctest "$ROOT/build-tsan" TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 -- -R '^(ConcurrentSessions|BatchScheduling)[.]'
fi

if [ -z "${POCKETLM_SKIP_FUZZ:-}" ]; then
  stage "[4/4] fuzzing (libFuzzer + ASan/UBSan)"
  "$ROOT/scripts/fuzz.sh" "${POCKETLM_FUZZ_SECONDS:-45}"
fi
echo "all tests passed (layers, release, ARM under qemu and sanitizer suites; fuzzers found nothing)"
echo "tests: $PASSED passed, $FAILED failed"
