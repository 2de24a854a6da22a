#!/usr/bin/env bash
# Cross-builds the ARM kernel paths (NEON, dotprod, i8mm) with g++-aarch64-linux-gnu (-Werror, kernels only:
# -DPOCKETLM_KERNELS_ONLY=ON) and runs their conformance checks against the scalar reference under
# qemu-aarch64 on four emulated CPUs, so each path is tested both as the best one dispatch picks and when
# forced with POCKETLM_ISA:
#   -cpu max         (dotprod + i8mm): dispatch must see i8mm,dotprod,neon and pick i8mm; each path forced
#   -cpu cortex-a76  (dotprod, no i8mm): must see dotprod,neon and pick dotprod
#   -cpu cortex-a57  (ARMv8.0, no dotprod): must see only neon and pick it; forcing i8mm must be refused
# Usage: scripts/test-arm.sh [BUILD_DIR]   (default build-arm; POCKETLM_JOBS=N: build jobs, default nproc).
# Called by scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build-arm}"
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

echo "arm tests: $((RUNS - FAILED)) passed, $FAILED failed"
[ "$FAILED" = 0 ]
