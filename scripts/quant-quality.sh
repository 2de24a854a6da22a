#!/usr/bin/env bash
# Quality of our quantizer beside llama.cpp's, with and without an importance matrix (the same imatrix for
# both), at Q4_0, Q4_K_M, Q3_K_M and Q2_K (RECIPES to change): per file, top-1 agreement ("same top") and
# mean KL divergence against the base on wiki.test.raw (`pocketlm perplexity --kl-divergence`), the
# per-tensor weighted RMSE of the two quantizers' reconstructions (scripts/quant-rmse.py, gguf-py
# dequantizing), and both quantizers' wall time. Prints Markdown tables (docs/quantization.md).
#   scripts/quant-quality.sh [BUILD_DIR] [CHUNKS]
# MODEL=stories (default; F32, the one truly unquantized model) | smollm2 | gemma (models/, from
# scripts/fetch-models.sh). The two releases are themselves quantized (SmolLM2 Q4_1, Gemma 3 Q4_K_M): their
# base is the release dequantized to F32 (`pocketlm quantize REL base.gguf f32`), and every file is quantized
# from that base, by both tools.
# CALIB=FILE calibrates on another text; CALIB=wiki-tail (the default for smollm2/gemma) uses the second half
# of wiki.test.raw, disjoint from the scored chunks. IM_CHUNKS limits the calibration chunks.
# KEEP=DIR keeps the base, the imatrix and every quantized file there (for `pocketlm eval` runs).
# Needs the llama.cpp peer (scripts/build-peer.sh): llama-quantize at $PEER/build/bin; python3 with gguf.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
PEER=${POCKETLM_PEER_DIR:-$ROOT/.peer}
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
EVAL=$SHARED/testdata/text/wiki.test.raw
MODEL=${MODEL:-stories}
RECIPES=${RECIPES:-Q4_0 Q4_K_M Q3_K_M Q2_K}
T=${THREADS:-2}
case "$MODEL" in
  stories) SRC=$SHARED/models/stories260K.gguf; CTX=128; CHUNKS=${2:-200}; CALIB=${CALIB:-$SHARED/testdata/text/tinystories-val.dev.txt} ;;
  smollm2) SRC=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf; CTX=512; CHUNKS=${2:-8}; CALIB=${CALIB:-wiki-tail} ;;
  gemma) SRC=$ROOT/models/gemma-3-270m-q4_k_m.gguf; CTX=512; CHUNKS=${2:-4}; CALIB=${CALIB:-wiki-tail} ;;
  *) echo "MODEL must be stories, smollm2 or gemma" >&2; exit 2 ;;
esac
[ -f "$SRC" ] || { echo "$SRC is missing: run scripts/fetch-models.sh" >&2; exit 1; }
if [ -n "${KEEP:-}" ]; then
  W=$KEEP; mkdir -p "$W"
else
  W=$(mktemp -d /tmp/plm-quant-quality.XXXXXX)
  trap 'rm -rf "$W"' EXIT
fi
if [ "$CALIB" = wiki-tail ]; then
  tail -c +$(( $(stat -c %s "$EVAL") / 2 )) "$EVAL" > "$W/wiki-tail.txt"
  CALIB=$W/wiki-tail.txt
fi

if [ "$MODEL" = stories ]; then
  M=$SRC
else  # the release dequantized: every quantized weight to f32, the rest as it is
  M=$W/base-f32.gguf
  [ -f "$M" ] || "$B" quantize "$SRC" "$M" f32 -t "$T" -q > /dev/null 2> "$W/base.log"
fi
IMARGS=(-c "$CTX" -t "$T")
[ -n "${IM_CHUNKS:-}" ] && IMARGS+=(--chunks "$IM_CHUNKS")
[ -f "$W/imatrix.gguf" ] || "$B" imatrix -m "$M" -f "$CALIB" "${IMARGS[@]}" -o "$W/imatrix.gguf" 2> "$W/imatrix.log"
[ -f "$W/base.plm" ] || "$B" perplexity -m "$M" -f "$EVAL" -c "$CTX" --chunks "$CHUNKS" -t "$T" --save-logits "$W/base.plm" > /dev/null 2>&1

score() {  # FILE -> "same_top_% mean_kld±error"
  "$B" perplexity -m "$1" --kl-divergence "$W/base.plm" -t "$T" -o json 2> /dev/null |
    python3 -c 'import json,sys; k=json.load(sys.stdin)["kl_divergence"]; print("%.2f %.5f±%.5f" % (100*k["same_top"]["value"], k["kld"]["mean"], k["kld"]["mean_error"]))'
}
seconds() { local t0; t0=$(date +%s.%N); "$@" > /dev/null 2>&1; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; }

echo "model: $MODEL ($SRC), base $M, -c $CTX, $CHUNKS chunks scored, imatrix from $(basename "$CALIB")"
echo
echo "| recipe | imatrix | pocketlm same top | pocketlm mean KLD | llama.cpp same top | llama.cpp mean KLD | weighted RMSE ours/llama.cpp: median (worst), tensors worse | quantize s: ours / llama.cpp |"
echo "|---|---|---|---|---|---|---|---|"
for R in $RECIPES; do
  for IM in no yes; do
    tag=$(echo "$R" | tr 'A-Z' 'a-z')$([ "$IM" = yes ] && echo -imatrix || true)
    OURS=("$B" quantize "$M" "$W/ours-$tag.gguf" "$R" -t "$T" -q)
    THEIRS=("$PEER/build/bin/llama-quantize")
    RMSE=(python3 "$ROOT/scripts/quant-rmse.py" "$M" "$W/ours-$tag.gguf" "$W/llama-$tag.gguf")
    if [ "$IM" = yes ]; then
      OURS+=(--imatrix "$W/imatrix.gguf")
      THEIRS+=(--imatrix "$W/imatrix.gguf")
      RMSE+=(--imatrix "$W/imatrix.gguf")
    fi
    THEIRS+=("$M" "$W/llama-$tag.gguf" "$R" "$T")
    o_s=$(seconds "${OURS[@]}")
    t_s=$(seconds "${THEIRS[@]}")
    read -r o_top o_kld < <(score "$W/ours-$tag.gguf")
    read -r t_top t_kld < <(score "$W/llama-$tag.gguf")
    rmse=$("${RMSE[@]}" --csv "$W/rmse-$tag.csv")
    printf '| %s | %s | %s %% | %s | %s %% | %s | %s | %.2f / %.2f |\n' "$R" "$IM" "$o_top" "$o_kld" "$t_top" "$t_kld" "$rmse" "$o_s" "$t_s"
  done
done
