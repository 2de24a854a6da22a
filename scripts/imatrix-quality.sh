#!/usr/bin/env bash
# Quality of quantized stories260K with and without an importance matrix, our quantizer beside llama.cpp's,
# the same imatrix for both: top-1 agreement ("same top") and mean KL divergence against the F32 model on
# wiki.test.raw, measured by `pocketlm perplexity --kl-divergence` for every file. Prints a Markdown table
# (docs/quantization.md, "imatrix: quality").
#   scripts/imatrix-quality.sh [BUILD_DIR] [CHUNKS]
# CALIB=FILE calibrates on another text (default: tinystories-val.dev.txt); CALIB=wiki-tail uses the second
# half of wiki.test.raw (disjoint from the scored chunks at the default CHUNKS).
# Needs the llama.cpp peer (scripts/build-peer.sh): llama-quantize at $PEER/build/bin.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
CHUNKS=${2:-200}
PEER=${POCKETLM_PEER_DIR:-$ROOT/.peer}
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
M=$SHARED/models/stories260K.gguf
EVAL=$SHARED/testdata/text/wiki.test.raw
CALIB=${CALIB:-$SHARED/testdata/text/tinystories-val.dev.txt}
T=${THREADS:-2}
W=$(mktemp -d /tmp/plm-imatrix-quality.XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ "$CALIB" = wiki-tail ]; then
  tail -c +$(( $(stat -c %s "$EVAL") / 2 )) "$EVAL" > "$W/wiki-tail.txt"
  CALIB=$W/wiki-tail.txt
fi

# The imatrix: ours, by default over the TinyStories validation text (the model's own domain, not the text scored).
"$B" imatrix -m "$M" -f "$CALIB" -c 128 -t "$T" -o "$W/imatrix.gguf" 2> "$W/imatrix.log"
"$B" perplexity -m "$M" -f "$EVAL" -c 128 --chunks "$CHUNKS" -t "$T" --save-logits "$W/base.plm" > /dev/null 2>&1

score() {  # FILE -> "same_top_% mean_kld"
  "$B" perplexity -m "$1" --kl-divergence "$W/base.plm" -t "$T" -o json 2> /dev/null |
    python3 -c 'import json,sys; k=json.load(sys.stdin)["kl_divergence"]; print("%.2f %.5f" % (100*k["same_top"]["value"], k["kld"]["mean"]))'
}

echo "| recipe | imatrix | pocketlm same top | pocketlm mean KLD | llama.cpp same top | llama.cpp mean KLD |"
echo "|---|---|---|---|---|---|"
for R in Q4_0 Q4_K_M Q3_K_M Q2_K; do
  for IM in no yes; do
    OURS=("$B" quantize "$M" "$W/ours.gguf" "$R" -t "$T" -q)
    THEIRS=("$PEER/build/bin/llama-quantize")
    if [ "$IM" = yes ]; then
      OURS+=(--imatrix "$W/imatrix.gguf")
      THEIRS+=(--imatrix "$W/imatrix.gguf")
    fi
    THEIRS+=("$M" "$W/theirs.gguf" "$R" "$T")
    "${OURS[@]}" > /dev/null 2>&1
    "${THEIRS[@]}" > /dev/null 2>&1
    read -r o_top o_kld < <(score "$W/ours.gguf")
    read -r t_top t_kld < <(score "$W/theirs.gguf")
    echo "| $R | $IM | $o_top % | $o_kld | $t_top % | $t_kld |"
  done
done
