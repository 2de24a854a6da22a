#!/usr/bin/env bash
# Cross-builds the ARM kernel paths (NEON, dotprod, i8mm) with g++-aarch64-linux-gnu (-Werror, kernels only:
# -DPOCKETLM_KERNELS_ONLY=ON) and runs their conformance checks against the scalar reference under
# qemu-aarch64 on four emulated CPUs, so each path is tested both as the best one dispatch picks and when
# forced with POCKETLM_ISA:
#   -cpu max         (dotprod + i8mm): dispatch must see i8mm,dotprod,neon and pick i8mm; each path forced
#   -cpu cortex-a76  (dotprod, no i8mm): must see dotprod,neon and pick dotprod
#   -cpu cortex-a57  (ARMv8.0, no dotprod): must see only neon and pick it; forcing i8mm must be refused
# Then the app side: pocketlm_core and examples/chat.c cross-built (-DPOCKETLM_CORE_ONLY=ON, PCRE2 from Debian's
# arm64 multiarch package), and one streamed chat turn on SmolLM2 under qemu-aarch64 (POCKETLM_QEMU_CHAT=0 skips it)
# -cpu max, whose output must equal the native build's (which tests/e2e/c_example_test.cpp checks against
# `pocketlm run --temp 0`).
# Usage: scripts/test-arm.sh [BUILD_DIR] [NATIVE_BUILD_DIR]   (defaults build-arm, build; POCKETLM_JOBS=N: build
# jobs, default nproc). Called by scripts/test.sh after the native build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build-arm}"
NATIVE="${2:-$ROOT/build}"
SYSROOT=/usr/aarch64-linux-gnu
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "test-arm: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

echo "== ARM kernels: cross build (g++-aarch64-linux-gnu, -Werror) =="
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPOCKETLM_WERROR=ON \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" -DPOCKETLM_KERNELS_ONLY=ON >/dev/null
ninja -C "$BUILD" -j"${POCKETLM_JOBS:-$(nproc)}" pocketlm_kernel_conformance
BIN="$BUILD/tests/pocketlm_kernel_conformance"

FAILED=0; RUNS=0
# run CPU [VAR=VALUE] -- runner args...: one qemu run; counts it and records a failure.
run() {
  local cpu="$1"; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  echo "-- qemu-aarch64 -cpu $cpu ${envs[*]:-} $(basename "$BIN") $*"
  RUNS=$((RUNS + 1))
  if ! env "${envs[@]}" qemu-aarch64 -cpu "$cpu" -L "$SYSROOT" "$BIN" "$@"; then
    echo "test-arm: FAILED on -cpu $cpu ${envs[*]:-}"; FAILED=$((FAILED + 1))
  fi
}

echo "== ARM kernels: conformance under qemu-aarch64 =="
run max -- --expect-paths i8mm,dotprod,neon --expect-active i8mm --seeds 3
for path in neon dotprod i8mm; do
  run max POCKETLM_ISA=$path -- --expect-paths i8mm,dotprod,neon --expect-active $path
done
run cortex-a76 -- --expect-paths dotprod,neon --expect-active dotprod
run cortex-a57 -- --expect-paths neon --expect-active neon --seeds 3

# A path the CPU cannot run must be refused, not silently replaced.
echo "-- qemu-aarch64 -cpu cortex-a57 POCKETLM_ISA=i8mm (must be refused)"
RUNS=$((RUNS + 1))
if out="$(POCKETLM_ISA=i8mm qemu-aarch64 -cpu cortex-a57 -L "$SYSROOT" "$BIN" 2>&1)"; then
  echo "$out"; echo "test-arm: FAILED: POCKETLM_ISA=i8mm ran on a CPU without i8mm"; FAILED=$((FAILED + 1))
elif ! grep -q "kernel path 'i8mm' is not built in or this CPU cannot run it" <<<"$out"; then
  echo "$out"; echo "test-arm: FAILED: POCKETLM_ISA=i8mm on cortex-a57 failed without the expected message"
  FAILED=$((FAILED + 1))
else
  echo "refused: $(grep -o "kernel path 'i8mm'.*" <<<"$out")"
fi

echo "== C example: pocketlm_core + examples/chat.c cross-built for aarch64, a chat turn under qemu =="
CORE="$BUILD-core"
cmake -S "$ROOT" -B "$CORE" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPOCKETLM_WERROR=ON -DPOCKETLM_NATIVE=OFF \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" -DPOCKETLM_CORE_ONLY=ON >/dev/null
ninja -C "$CORE" -j"${POCKETLM_JOBS:-$(nproc)}" pocketlm_chat_example
MODEL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
NATIVE_EX="$NATIVE/examples/pocketlm_chat_example"
# A prompt whose greedy reply has no near-tie: "Name three colours of the rainbow." starts with '1' or 'The'
# 0.17 logits apart, and the kernel paths' own spread is larger (under qemu, dotprod and scalar differ by 0.25
# on those logits), so i8mm's summation order picks 'The' where every other path picks '1' (docs/kernels.md).
MESSAGE="What is the capital of France?"
# The chat turn runs by default (about a minute under qemu); POCKETLM_QEMU_CHAT=0 skips it. It used to hang:
# qemu's -L sysroot gave the cross toolchain's ld.so while LD_LIBRARY_PATH gave Debian's multiarch libc
# (another glibc build: ld.so and libc share private structures, and pthread_create looped forever), so the
# sysroot's own libraries come first and the multiarch folder only adds PCRE2.
if [ "${POCKETLM_QEMU_CHAT:-1}" != 1 ]; then
  echo "cross-built $CORE/examples/pocketlm_chat_example; POCKETLM_QEMU_CHAT=0: the chat turn under qemu is skipped"
elif [ ! -f "$MODEL" ] || [ ! -x "$NATIVE_EX" ]; then
  RUNS=$((RUNS + 1))
  echo "test-arm: FAILED: the chat example needs $MODEL (scripts/fetch-models.sh) and $NATIVE_EX (scripts/build.sh)"
  FAILED=$((FAILED + 1))
else
  want="$("$NATIVE_EX" "$MODEL" "$MESSAGE" 16 2>/dev/null)"
  RUNS=$((RUNS + 1))
  echo "-- qemu-aarch64 -cpu max pocketlm_chat_example SmolLM2 \"$MESSAGE\" 16"
  # The arm64 PCRE2 lives in Debian's multiarch folder, outside the cross sysroot qemu's -L names.
  if got="$(LD_LIBRARY_PATH="$SYSROOT/lib:/usr/lib/aarch64-linux-gnu" qemu-aarch64 -cpu max -L "$SYSROOT" \
              "$CORE/examples/pocketlm_chat_example" "$MODEL" "$MESSAGE" 16 2>"$CORE/chat.err")" && [ "$got" = "$want" ] \
     && [ -n "$got" ]; then
    echo "same reply as the native build ($(wc -c <<<"$got") bytes); $(grep -o 'generation: [^|]*' "$CORE/chat.err" | head -1)"
  else
    echo "test-arm: FAILED: the chat example under qemu replied differently (or failed)"
    echo "native: $want"; echo "qemu:   $got"; tail -5 "$CORE/chat.err"
    FAILED=$((FAILED + 1))
  fi
fi

echo "arm tests: $((RUNS - FAILED)) passed, $FAILED failed"
[ "$FAILED" = 0 ]
