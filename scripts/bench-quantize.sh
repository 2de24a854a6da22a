#!/usr/bin/env bash
# Wall time of `pocketlm quantize` against `llama-quantize` on the same F32 base, type and thread count
# (docs/quantization.md, "Quantizer speed"). For each model and recipe, RTN (no imatrix) and with the same
# imatrix file (made once by llama-imatrix), the two tools run alternately ROUNDS times each so that both see the
# same machine state; prints a Markdown table of the median wall seconds and ours / llama-quantize.
#   scripts/bench-quantize.sh [BUILD_DIR]          (on an idle machine: it is a speed measurement)
# MODELS (smollm2 gemma), RECIPES (Q4_0 Q4_K_M Q3_K_M Q2_K), MODES (rtn imatrix), ROUNDS (3), THREADS (2),
# SEARCH (fast: pocketlm's --search), WORK (out/bench-quantize: bases, imatrix files, outputs).
# The SmolLM2 and Gemma 3 files are themselves quantized releases (Q4_1, Q4_K_M): the base is the release
# dequantized to F32 (`pocketlm quantize REL base.gguf f32`), made once in WORK.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
PEER=${POCKETLM_PEER_DIR:-$ROOT/.peer}/build/bin
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
MODELS=${MODELS:-smollm2 gemma}
RECIPES=${RECIPES:-Q4_0 Q4_K_M Q3_K_M Q2_K}
MODES=${MODES:-rtn imatrix}
ROUNDS=${ROUNDS:-3}
T=${THREADS:-2}
SEARCH=${SEARCH:-fast}
WORK=${WORK:-$ROOT/out/bench-quantize}
mkdir -p "$WORK"
for tool in "$B" "$PEER/llama-quantize" "$PEER/llama-imatrix"; do
  [ -x "$tool" ] || { echo "bench-quantize: $tool not found (scripts/build.sh; scripts/build-peer.sh)" >&2; exit 1; }
done

release() {
  case $1 in
    smollm2) echo "$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
    gemma) echo "$ROOT/models/gemma-3-270m-q4_k_m.gguf" ;;
    *) echo "bench-quantize: unknown model '$1' (smollm2, gemma)" >&2; exit 1 ;;
  esac
}

# Seconds of wall time of a command (its output discarded; a failure stops the script).
wall() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$WORK/last.log" 2>&1 || { echo "bench-quantize: failed: $* (log: $WORK/last.log)" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| model | recipe | mode | pocketlm (s) | llama-quantize (s) | ratio |"
echo "|---|---|---|---|---|---|"
for model in $MODELS; do
  rel=$(release "$model")
  [ -f "$rel" ] || { echo "bench-quantize: $rel not found (scripts/fetch-models.sh)" >&2; exit 1; }
  base=$WORK/$model-f32.gguf
  [ -f "$base" ] || "$B" quantize "$rel" "$base" f32 -q > "$WORK/$model-base.log" 2>&1
  imat=$WORK/$model-imatrix.gguf
  [[ " $MODES " != *" imatrix "* || -f "$imat" ]] || "$PEER/llama-imatrix" -m "$base" -f "$SHARED/testdata/text/wiki.test.raw" -c 512 --chunks 16 \
    -t "$T" --no-ppl -o "$imat" > "$WORK/$model-imatrix.log" 2>&1 < /dev/null
  for recipe in $RECIPES; do
    for mode in $MODES; do
      ours_args=() peer_args=()
      if [ "$mode" = imatrix ]; then
        ours_args=(--imatrix "$imat")
        peer_args=(--imatrix "$imat")
      fi
      ours="" peer=""
      for _ in $(seq "$ROUNDS"); do
        ours+=" $(wall "$B" quantize "$base" "$WORK/ours.gguf" "$recipe" -t "$T" -q --search "$SEARCH" "${ours_args[@]}")"
        peer+=" $(wall "$PEER/llama-quantize" "${peer_args[@]}" "$base" "$WORK/peer.gguf" "$recipe" "$T")"
      done
      mo=$(echo "$ours" | median)
      mp=$(echo "$peer" | median)
      printf "| %s | %s | %s | %.2f | %.2f | %.2f |\n" "$model" "$recipe" "$mode" "$mo" "$mp" "$(echo "$mo / $mp" | bc -l)"
    done
  done
done
rm -f "$WORK/ours.gguf" "$WORK/peer.gguf"
