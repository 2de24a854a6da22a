#!/usr/bin/env bash
# Quality without an imatrix (docs/quantization.md, "nearest, fast and llama-quantize's RTN compared"): per recipe,
# pocketlm `--search nearest`, pocketlm's default fast search and llama-quantize, each file judged by
# `llama-perplexity --kl-divergence` against the F32 base on held-out text. Prints a Markdown table.
#   nice -n 10 scripts/quant-rtn-quality.sh [BUILD_DIR]
# MODEL=smollm2 (default) | gemma | stories; RECIPES (Q4_0 Q4_K_M Q3_K_M Q2_K); KEEP=DIR keeps the files and
# reuses its base and KLD base (the same DIR as scripts/quant-methods-quality.sh's KEEP works). The SmolLM2 and
# Gemma 3 bases are quantized releases dequantized to F32. Needs the llama.cpp peer (.peer/build/bin).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
PEER=${POCKETLM_PEER_DIR:-$ROOT/.peer}/build/bin
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
MODEL=${MODEL:-smollm2}
RECIPES=${RECIPES:-Q4_0 Q4_K_M Q3_K_M Q2_K}
CALIB_BYTES=${CALIB_BYTES:-400000}
T=${THREADS:-2}
# shellcheck source=scripts/quality-setup.sh
. "$ROOT/scripts/quality-setup.sh"
quality_setup rtn-quality stories smollm2 gemma
[ -f "$W/base.kld" ] || "$PEER/llama-perplexity" -m "$M" -f "$EVAL" -c "$CTX" --chunks "$CHUNKS" -t "$T" --kl-divergence-base "$W/base.kld" > "$W/base-ppl.log" 2>&1

echo "model: $MODEL, base $(basename "$M"); scored by llama-perplexity --kl-divergence on tinystories-val.dev.txt, -c $CTX, $CHUNKS chunks"
echo
echo "| recipe | quantizer | mean KLD | same top |"
echo "|---|---|---|---|"
for R in $RECIPES; do
  r=$(echo "$R" | tr '[:upper:]' '[:lower:]')
  "$B" quantize "$M" "$W/$r-nearest.gguf" "$R" --search nearest -t "$T" -q > /dev/null 2>&1
  "$B" quantize "$M" "$W/$r-fast.gguf" "$R" -t "$T" -q > /dev/null 2>&1
  "$PEER/llama-quantize" "$M" "$W/$r-llama-rtn.gguf" "$R" "$T" > "$W/$r-llama-rtn.log" 2>&1
  echo "| $R | pocketlm --search nearest | $(kld_score "$W/$r-nearest.gguf") |"
  echo "| $R | pocketlm fast (default) | $(kld_score "$W/$r-fast.gguf") |"
  echo "| $R | llama-quantize | $(kld_score "$W/$r-llama-rtn.gguf") |"
done
