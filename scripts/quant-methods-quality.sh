#!/usr/bin/env bash
# Quality of the quantization methods that see the activations (`pocketlm quantize --method`, docs/quantization.md),
# judged by llama.cpp: `llama-perplexity --kl-divergence` of each file against the F32 base on held-out text.
# Per recipe: pocketlm rtn / imatrix / awq / gptq / awq+gptq (each with --smooth ALPHA too when SMOOTH is set), and
# llama-quantize with an imatrix made by llama-imatrix on the same calibration text. Prints a Markdown table
# (mean KLD ± its error, same top token, quantize wall time and peak RSS).
#   nice -n 10 scripts/quant-methods-quality.sh [BUILD_DIR]
# MODEL=smollm2 (default) | gemma | stories. The SmolLM2 and Gemma 3 files are themselves quantized releases
# (Q4_1, Q4_K_M): their base is the release dequantized to F32 (`pocketlm quantize REL base.gguf f32`), and every
# file is quantized from it. stories260K is a true F32 model.
# Calibration: the first CALIB_BYTES (400000) of wiki.test.raw; scoring: TinyStories validation text (held out),
# -c CTX, CHUNKS chunks. CALIB_TOKENS (8192): tokens every method calibrates on (llama-imatrix: the same chunks).
# RECIPES (Q4_0 Q3_K_M), METHODS (rtn imatrix awq gptq awq+gptq), SMOOTH (e.g. 0.5; empty: none).
# KEEP=DIR keeps the files. Needs the llama.cpp peer (.peer/build/bin). Run it detached from the terminal
# (setsid ... < /dev/null) when it goes to the background: llama.cpp's tools stop on terminal access there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
PEER=${POCKETLM_PEER_DIR:-$ROOT/.peer}/build/bin
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
MODEL=${MODEL:-smollm2}
RECIPES=${RECIPES:-Q4_0 Q3_K_M}
METHODS=${METHODS:-rtn imatrix awq gptq awq+gptq}
SMOOTH=${SMOOTH:-}
CALIB_BYTES=${CALIB_BYTES:-400000}
CALIB_TOKENS=${CALIB_TOKENS:-8192}
T=${THREADS:-2}
# shellcheck source=scripts/quality-setup.sh
. "$ROOT/scripts/quality-setup.sh"
quality_setup methods-quality stories smollm2 gemma
# llama-imatrix reads the same chunks our methods calibrate on (the first CALIB_TOKENS / CTX of them).
[ -f "$W/llama-imatrix.gguf" ] || "$PEER/llama-imatrix" -m "$M" -f "$W/calib.txt" -c "$CTX" --chunks $((CALIB_TOKENS / CTX)) \
  -t "$T" --no-ppl -o "$W/llama-imatrix.gguf" > "$W/llama-imatrix.log" 2>&1
[ -f "$W/base.kld" ] || "$PEER/llama-perplexity" -m "$M" -f "$EVAL" -c "$CTX" --chunks "$CHUNKS" -t "$T" --kl-divergence-base "$W/base.kld" > "$W/base-ppl.log" 2>&1
measure() {  # LOG CMD... -> "seconds|peak_MiB" (GNU time)
  local log=$1; shift
  /usr/bin/time -f '%e %M' -o "$W/time.txt" "$@" > "$log" 2>&1
  awk '{ printf "%.1f | %.0f", $1, $2 / 1024 }' "$W/time.txt"
}

echo "model: $MODEL ($(basename "$SRC")), base $(basename "$M"); calibration: first $CALIB_BYTES bytes of wiki.test.raw" \
  "(the first $CALIB_TOKENS tokens, in chunks of $CTX, for every method and llama-imatrix); scored by llama-perplexity --kl-divergence" \
  "on tinystories-val.dev.txt, -c $CTX, $CHUNKS chunks"
echo
echo "| recipe | method | mean KLD | same top | quantize s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for R in $RECIPES; do
  tag=$(echo "$R" | tr 'A-Z' 'a-z')
  for METHOD in $METHODS; do
    for SM in none $SMOOTH; do
      args=(quantize "$M" "$W/$tag-$METHOD-$SM.gguf" "$R" -t "$T" -q --method "$METHOD" --calib-cache "$W/calib.cache")
      [ "$METHOD" != rtn ] && args+=(--calib "$W/calib.txt" --calib-tokens "$CALIB_TOKENS" --calib-ctx "$CTX")
      if [ "$SM" != none ]; then
        [ "$METHOD" = rtn ] && args+=(--calib "$W/calib.txt" --calib-tokens "$CALIB_TOKENS" --calib-ctx "$CTX")
        args+=(--smooth "$SM")
      fi
      tm=$(measure "$W/$tag-$METHOD-$SM.log" "$B" "${args[@]}")
      label=$METHOD$([ "$SM" != none ] && echo " + smooth $SM" || true)
      echo "| $R | pocketlm $label | $(kld_score "$W/$tag-$METHOD-$SM.gguf") | $tm |"
    done
  done
  tm=$(measure "$W/$tag-llama.log" "$PEER/llama-quantize" --imatrix "$W/llama-imatrix.gguf" "$M" "$W/$tag-llama.gguf" "$R" "$T")
  echo "| $R | llama-quantize + llama-imatrix | $(kld_score "$W/$tag-llama.gguf") | $tm |"
  "$B" quantize "$M" "$W/$tag-ours-llama-imatrix.gguf" "$R" -t "$T" -q --imatrix "$W/llama-imatrix.gguf" > /dev/null 2>&1
  echo "| $R | pocketlm with llama-imatrix's file | $(kld_score "$W/$tag-ours-llama-imatrix.gguf") | | |"
done
