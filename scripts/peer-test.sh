#!/usr/bin/env bash
# Runs the peer comparison: builds llama.cpp into .peer/ if needed (scripts/build-peer.sh), builds the
# pocketlm-peer harness and the tests, then runs the e2e peer tests (docs/peer.md).
#   scripts/peer-test.sh                      all peer tests
#   scripts/peer-test.sh 'PeerStories.*'      a gtest filter
# Env: BUILD_DIR (default build), JOBS (default 2).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
FILTER="${1:-PeerStories.*:PeerVsPocketlm*}"

"$ROOT/scripts/build-peer.sh"
cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
ninja -C "$BUILD" -j "${JOBS:-2}" pocketlm-peer pocketlm_tests
"$BUILD/tests/pocketlm_tests" --gtest_filter="$FILTER"
