#!/usr/bin/env bash
# The run-time cost of the outlier branch (docs/quantization.md "Outlier branch"): `pocketlm bench` (pp512, tg128,
# medians of 5) on the same recipe with K = 0, 8, 32 outlier columns, in one interleaved run. Run it on an idle
# machine. The files come from scripts/quant-outliers-quality.sh with KEEP=DIR:
#   KEEP=/tmp/olq nice -n 10 scripts/quant-outliers-quality.sh      # makes DIR/q4_0-k8.gguf, ...
#   DIR=/tmp/olq scripts/bench-outliers.sh [BUILD_DIR]
# RECIPES (q4_0 q3_k_m), KS (0 8 32), THREADS (1,2: a comma list, as bench takes it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
DIR=${DIR:?DIR=the KEEP directory of scripts/quant-outliers-quality.sh}
THREADS=${THREADS:-1,2}
for R in ${RECIPES:-q4_0 q3_k_m}; do
  models=()
  for K in ${KS:-0 8 32}; do
    f=$DIR/$R-k$K.gguf
    [ -f "$f" ] || { echo "$f is missing: run scripts/quant-outliers-quality.sh with KEEP=$DIR first" >&2; exit 1; }
    models+=(-m "$f")
  done
  "$B" bench "${models[@]}" -p 512 -n 128 -t "$THREADS" -r 5
done
