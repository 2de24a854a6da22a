#!/usr/bin/env bash
# The outlier branch (`pocketlm quantize --outliers K`, docs/quantization.md "Outlier branch") against spending
# the same bytes on a higher bit width: per recipe, the imatrix method with K outlier columns per matrix (K in
# OUTLIERS) and the uniform alternatives at about the same bits/weight, each file's mean KLD against the F32 base
# and its bits/weight. llama.cpp cannot load a file with outlier side tensors, so EVERY row here is scored by
# pocketlm's own evaluator (`pocketlm perplexity --kl-divergence`, against distributions saved by pocketlm from
# the base), so the rows are comparable with each other (not with quant-methods-quality.sh's llama.cpp figures).
# Prints a Markdown table and writes an SVG plot of KLD against bits/weight (src/eval/svg_plot through
# `pocketlm eval plot`).
#   nice -n 10 scripts/quant-outliers-quality.sh [BUILD_DIR]
# MODEL=smollm2 (default: the Q4_1 release dequantized to F32, itself a quantized release) | stories.
# Calibration: the first CALIB_BYTES (400000) of wiki.test.raw, CALIB_TOKENS (8192) tokens in chunks of CTX;
# scoring: TinyStories validation text (held out), -c CTX, CHUNKS chunks.
# ROWS: "RECIPE:K ..." (K = outlier columns; 0 = none). KEEP=DIR keeps the files (and reuses finished ones).
# PLOT=FILE.svg (default: docs/img/outliers-<model>.svg).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
MODEL=${MODEL:-smollm2}
ROWS=${ROWS:-Q4_0:0 Q4_0:8 Q4_0:32 Q4_0:64 Q4_1:0 Q5_0:0 Q3_K_M:0 Q3_K_M:8 Q3_K_M:32 Q3_K_M:64 Q4_K_S:0 Q4_K_M:0}
CALIB_BYTES=${CALIB_BYTES:-400000}
CALIB_TOKENS=${CALIB_TOKENS:-8192}
T=${THREADS:-2}
# shellcheck source=scripts/quality-setup.sh
. "$ROOT/scripts/quality-setup.sh"
quality_setup outliers-quality stories smollm2
PLOT=${PLOT:-$ROOT/docs/img/outliers-$MODEL.svg}
[ -f "$W/base.plm" ] || "$B" perplexity -m "$M" -f "$EVAL" -c "$CTX" --chunks "$CHUNKS" -t "$T" \
  --save-logits "$W/base.plm" > "$W/base-ppl.log" 2>&1 < /dev/null

bpw() {  # FILE -> bits per weight: all tensor bytes (side tensors included) / the base model's parameters
  "$B" inspect "$1" --no-tensors 2>/dev/null | awk '/ parameters, .* bits per weight$/ { for (i = 1; i < NF; ++i) if ($(i + 1) == "bits") print $i }'
}
score() {  # FILE -> "mean_kld ± err | same_top"
  "$B" perplexity -m "$1" --kl-divergence "$W/base.plm" -t "$T" 2> /dev/null < /dev/null |
    awk '/^Mean +KLD:/ { k = $3 " ± " $5 } /^Same top p:/ { s = $4 " %" } END { print k " | " s }'
}

echo "model: $MODEL ($(basename "$SRC")), base $(basename "$M"); method imatrix, calibration: first $CALIB_BYTES bytes of" \
  "wiki.test.raw ($CALIB_TOKENS tokens, chunks of $CTX); scored by pocketlm perplexity --kl-divergence on" \
  "tinystories-val.dev.txt, -c $CTX, $CHUNKS chunks"
echo
echo "| recipe | outliers K | bits/weight | mean KLD | same top | quantize s |"
echo "|---|---:|---:|---|---|---:|"
POINTS=$W/points.tsv
: > "$POINTS"
for row in $ROWS; do
  R=${row%%:*} K=${row##*:}
  f=$W/$(echo "$R" | tr 'A-Z' 'a-z')-k$K.gguf
  s=
  if [ ! -f "$f" ]; then
    args=(quantize "$M" "$f" "$R" -t "$T" -q --method imatrix --calib "$W/calib.txt" --calib-tokens "$CALIB_TOKENS"
      --calib-ctx "$CTX" --calib-cache "$W/calib.cache")
    [ "$K" != 0 ] && args+=(--outliers "$K")
    /usr/bin/time -f '%e' -o "$W/time.txt" "$B" "${args[@]}" > "$f.log" 2>&1 < /dev/null
    s=$(cat "$W/time.txt")
  fi
  b=$(bpw "$f")
  r=$(score "$f")
  echo "| $R | $K | $b | $r | $s |"
  printf '%s\t%s\t%s\t%s\n' "$R" "$K" "$b" "${r%% ±*}" >> "$POINTS"
done
# The plot: the uniform types (K = 0) as one line, each recipe with outlier columns as another (from its K = 0
# point). SmolLM2's base is the Q4_1 release, so a Q4_1 file recovers the base's own grid: a point of its own.
series() {  # AWK-CONDITION LABEL-EXPR -> "x:y:label,..."
  awk -F'\t' -v base_grid="$([ "$MODEL" = smollm2 ] && echo Q4_1)" "$1 { printf \"%s%s:%s:%s\", n++ ? \",\" : \"\", \$3, \$4, $2 }" "$POINTS"
}
args=(--series "uniform types (imatrix)=$(series '$2 == 0 && $1 != base_grid' '$1')")
for R in $(awk -F'\t' '$2 != 0 { print $1 }' "$POINTS" | sort -u); do
  args+=(--series "$R + K outlier columns in f16=$(series "\$1 == \"$R\"" '($2 == 0 ? "" : "K=" $2)')")
done
[ "$MODEL" = smollm2 ] && grep -q '^Q4_1	0	' "$POINTS" &&
  args+=(--series "Q4_1 (the base's own grid: not comparable)=$(series '$1 == "Q4_1"' '"Q4_1"')")
"$B" eval plot "${args[@]}" --svg "$PLOT" --x-label "bits per weight (whole file)" \
  --y-label "mean KLD vs the F32 base (pocketlm)" --title "$MODEL: outlier columns vs uniform types (imatrix method)"
