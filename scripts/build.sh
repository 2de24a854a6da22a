#!/usr/bin/env bash
# Configures and builds pocketlm. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
#   default BUILD_DIR: build (Release, -Werror)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"; shift || true
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPOCKETLM_WERROR=ON "$@" >/dev/null
ninja -C "$BUILD" -j"$(nproc)"
