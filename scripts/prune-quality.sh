#!/usr/bin/env bash
# Structured pruning against plain quantization at the same bytes (docs/pruning.md): every pruned variant of
# the F32 base (1, 2, 4 blocks dropped by angular distance; FFN width kept at 75 % and 50 %; a quarter of the
# heads (a third on SmolLM2, whose 3 KV groups of 3 allow no quarter); FFN and heads, and on SmolLM2 the
# dropped blocks, also with the least-squares repair) is quantized to $Q (Q4_K_M), then scored against the
# base on wiki.test.raw: top-1 agreement and mean KL divergence (`pocketlm perplexity --kl-divergence`), and,
# with TASKS=1, on the dev task sets (`pocketlm eval`). Beside them: the unpruned base at Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K (the
# "one step lower" files). Prints a Markdown table; with TASKS=1 also `pocketlm eval compare`'s report and its
# plot (score and KLD against file size: the unpruned ladder as lines, each pruned file a point) as
# docs/img/pruning-$MODEL.svg.
#   nice -n 10 scripts/prune-quality.sh [BUILD_DIR] [CHUNKS]
# MODEL=smollm2 (default) | gemma (models/, from scripts/fetch-models.sh). Both releases are themselves
# quantized (SmolLM2 Q4_1, Gemma 3 Q4_K_M): the base is the release dequantized to F32 (`pocketlm quantize REL
# base.gguf f32`), and every file is made from that base. Calibration: the second half of wiki.test.raw
# (disjoint from the scored chunks), CALIB_TOKENS tokens (default 4096).
# TASKS=1 runs the dev tasks (TASK_FILES, the first LIMIT examples of each; slow: generation; a kept results
# file is resumed, so a larger LIMIT adds only the missing examples). KEEP=DIR keeps the files
# (and a rerun with the same KEEP reuses them: e.g. the table first, TASKS=1 later). ONLY=REGEX keeps the
# variants whose name matches (e.g. ONLY='drop 2|FFN 75|heads'); LADDER='Q4_K_M Q3_K_M' shortens the ladder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build}/bin/pocketlm
SHARED=${POCKETLM_SHARED_DIR:-$ROOT/../shared}
EVAL=$SHARED/testdata/text/wiki.test.raw
MODEL=${MODEL:-smollm2}
Q=${Q:-Q4_K_M}
LADDER=${LADDER:-Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K}
CALIB_TOKENS=${CALIB_TOKENS:-4096}
T=${THREADS:-2}
LIMIT=${LIMIT:-8}
TASK_FILES=${TASK_FILES:-$SHARED/testdata/tasks/summarize.dev.jsonl,$SHARED/testdata/tasks/translate-en-fr.dev.jsonl}
case "$MODEL" in
  smollm2) SRC=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf; NL=30; HEADS=0.667; CHUNKS=${2:-8} ;;
  gemma) SRC=$ROOT/models/gemma-3-270m-q4_k_m.gguf; NL=18; HEADS=0.75; CHUNKS=${2:-4} ;;
  *) echo "MODEL must be smollm2 or gemma" >&2; exit 2 ;;
esac
CTX=512
[ -f "$SRC" ] || { echo "$SRC is missing: run scripts/fetch-models.sh" >&2; exit 1; }
if [ -n "${KEEP:-}" ]; then
  W=$KEEP; mkdir -p "$W"
else
  W=$(mktemp -d /tmp/plm-prune-quality.XXXXXX)
  trap 'rm -rf "$W"' EXIT
fi
tail -c +$(( $(stat -c %s "$EVAL") / 2 )) "$EVAL" > "$W/wiki-tail.txt"
M=$W/base-f32.gguf
[ -f "$M" ] || "$B" quantize "$SRC" "$M" f32 -t "$T" -q > /dev/null 2> "$W/base.log"
[ -f "$W/base.plm" ] || "$B" perplexity -m "$M" -f "$EVAL" -c "$CTX" --chunks "$CHUNKS" -t "$T" --save-logits "$W/base.plm" > /dev/null 2>&1

# FILE -> "same_top_% mean_kld" (and the JSON kept for eval compare)
score() {
  [ -s "$1.kld.json" ] || "$B" perplexity -m "$1" --kl-divergence "$W/base.plm" -t "$T" -o json 2> /dev/null > "$1.kld.json"
  python3 -c 'import json,sys; k=json.load(open(sys.argv[1]))["kl_divergence"]; print("%.2f %.5f" % (100*k["same_top"]["value"], k["kld"]["mean"]))' "$1.kld.json"
}
mib() { python3 -c 'import os,sys; print("%.1f" % (os.path.getsize(sys.argv[1]) / 2**20))' "$1"; }

declare -a NAMES=() FLAGS=()
add() { if [[ "$1" =~ ${ONLY:-.} ]]; then NAMES+=("$1"); FLAGS+=("$2"); fi; }
add "drop 1 layer" "--layers $((NL - 1))"
add "drop 2 layers" "--layers $((NL - 2))"
add "drop 4 layers" "--layers $((NL - 4))"
if [ "$MODEL" = smollm2 ]; then  # the fold of dropped blocks into the block before: Llama-block archs only
  add "drop 1 layer + repair" "--layers $((NL - 1)) --repair"
  add "drop 2 layers + repair" "--layers $((NL - 2)) --repair"
  add "drop 4 layers + repair" "--layers $((NL - 4)) --repair"
fi
add "FFN 75 %" "--ffn-keep 0.75"
add "FFN 75 % + repair" "--ffn-keep 0.75 --repair"
add "FFN 50 %" "--ffn-keep 0.5"
add "FFN 50 % + repair" "--ffn-keep 0.5 --repair"
add "heads $HEADS" "--heads-keep $HEADS"
add "heads $HEADS + repair" "--heads-keep $HEADS --repair"

echo "model: $MODEL ($SRC dequantized to F32), $CHUNKS chunks of $CTX tokens of wiki.test.raw scored, calibration $CALIB_TOKENS tokens of its second half; pruned files quantized to $Q"
echo
echo "| variant | shape (layers, heads/kv, FFN) | file MiB | same top | mean KLD |"
echo "|---|---|---|---|---|"
declare -a FILES=() LABELS=() ROWS=()  # ROWS: "variant|shape|MiB|same top|KLD", for the table with task scores
for R in $LADDER; do
  f=$W/base-$R.gguf
  [ -f "$f" ] || "$B" quantize "$M" "$f" "$R" -t "$T" -q > /dev/null 2>&1
  read -r top kld < <(score "$f")
  printf '| unpruned %s | - | %s | %s %% | %s |\n' "$R" "$(mib "$f")" "$top" "$kld"
  ROWS+=("unpruned $R|-|$(mib "$f")|$top %|$kld")
  FILES+=("$f"); LABELS+=("$R")
done
for i in "${!NAMES[@]}"; do
  tag=$(echo "${NAMES[$i]}" | tr -c 'a-zA-Z0-9\n' '_')
  p=$W/pruned-$tag.gguf
  f=$W/pruned-$tag-$Q.gguf
  if [ ! -f "$f" ]; then  # (kept from an earlier run with KEEP=DIR)
    # shellcheck disable=SC2086
    "$B" prune "$M" "$p" ${FLAGS[$i]} --calib "$W/wiki-tail.txt" --calib-tokens "$CALIB_TOKENS" -t "$T" -q > "$W/$tag.plan" 2> "$W/$tag.log"
    "$B" quantize "$p" "$f" "$Q" -t "$T" -q > /dev/null 2>&1
    rm -f "$p"
  fi
  shape=$(head -1 "$W/$tag.plan" | sed -E 's/^arch [a-z0-9]+: ([0-9]+) -> ([0-9]+) layers, heads ([0-9]+)\/([0-9]+) kv -> ([0-9]+)\/([0-9]+) kv.*FFN ([0-9]+) -> ([0-9]+).*/\2, \5\/\6, \8/')
  read -r top kld < <(score "$f")
  printf '| %s + %s | %s | %s | %s %% | %s |\n' "${NAMES[$i]}" "$Q" "$shape" "$(mib "$f")" "$top" "$kld"
  ROWS+=("${NAMES[$i]} + $Q|$shape|$(mib "$f")|$top %|$kld")
  FILES+=("$f"); LABELS+=("$(echo "${NAMES[$i]}" | sed -E 's/ layers?//; s/ %//; s/ \+ repair/+rep/; s/ //g')")
done

if [ "${TASKS:-0}" = 1 ]; then
  RES=() KLDS=()
  for i in "${!FILES[@]}"; do
    # (resumes: a kept results file gets only the examples it lacks)
    echo "eval ${LABELS[$i]} ($((i + 1))/${#FILES[@]})" >&2
    "$B" eval -m "${FILES[$i]}" --tasks "$TASK_FILES" --limit "$LIMIT" -t "$T" -o "${FILES[$i]}.eval.jsonl" > /dev/null 2> "${FILES[$i]}.eval.log"
    RES+=("${FILES[$i]}.eval.jsonl"); KLDS+=("${FILES[$i]}.kld.json")
  done
  mkdir -p "$ROOT/docs/img"
  "$B" eval compare "${RES[@]}" --labels "$(IFS=,; echo "${LABELS[*]}")" --kld "$(IFS=,; echo "${KLDS[*]}")" --x size \
    --line "$(echo $LADDER | tr ' ' ,)" -o "$W/compare.md" --json "$W/compare.json" \
    --svg "$ROOT/docs/img/pruning-$MODEL.svg" > /dev/null
  # The table again with each task's primary score (mean and paired-bootstrap 95 % interval over the examples
  # common to all files); eval compare's whole report (every pair's wins and losses) is in $W/compare.md.
  echo
  printf '%s\n' "${ROWS[@]}" | python3 -c '
import json, sys
rep = json.load(open(sys.argv[1]))
labels = sys.argv[2].split(",")
tasks = rep["tasks"]
head = ["variant", "shape (layers, heads/kv, FFN)", "file MiB", "same top", "mean KLD"]
head += ["%s %s (n=%d)" % (t["task"], t["primary_metric"], t["n_examples"]) for t in tasks]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for label, row in zip(labels, sys.stdin.read().splitlines()):
    cells = row.split("|")
    for t in tasks:
        s = t["scores"][label][t["primary_metric"]]
        cells.append("%.1f [%.1f, %.1f]" % (s["mean"], s["ci95"][0], s["ci95"][1]))
    print("| " + " | ".join(cells) + " |")
d = rep.get("disagreement")
if d:
    v = d["variant_pairs"]
    print("\nKLD and task ranking disagree on %d of %d decided variant pairs (pooled over tasks)" % (v["opposite"], v["decided"]))
' "$W/compare.json" "$(IFS=,; echo "${LABELS[*]}")"
  echo "(eval compare's report: $W/compare.md; plot: docs/img/pruning-$MODEL.svg)"
fi
