#!/usr/bin/env bash
# The SmolLM2 demonstration of `pocketlm tune` (issue 19, docs/tune.md): for the lead to run on an idle machine.
#
#   1. base: the SmolLM2-135M-Instruct release (Q4_1) dequantized to F32 -- itself a quantized release, so every
#      candidate is a requantization of it, and "F32" is the release's weights, not the original bf16 training;
#   2. tune over the summarize and commit-message dev tasks (the first $LIMIT examples of each), budget $BUDGET at
#      -c $CTX (excludes Q8_0 and F16 with an f16 KV cache: checked with `pocketlm plan` first), KLD on the first
#      half of wiki.test.raw, calibration (imatrix) on its second half;
#   3. the pick's peak RSS at -c $CTX (/usr/bin/time -v, a prompt that fills the context) against the budget;
#   4. held-back examples (the $HELD after the first $LIMIT of each file: tune never saw them): the pick against
#      Q4_K_M and Q4_0 RTN of the same base with `pocketlm eval compare` (paired bootstrap intervals).
#
# Usage: scripts/tune-smollm2.sh [BUILD_DIR] [WORK_DIR]
#   env: LIMIT (tune examples per task, 16), HELD (held-back examples per task, 50), T (threads, 2),
#        BUDGET (234M), CTX (2048), WORKERS (1), SMOKE=1 (a tiny run: 2 targets, 4 examples, 4 held back).
# Time (estimate, 2-core machine, idle): ~15-20 min for the tune at LIMIT=16 (10 candidates), ~10 min for the
# held-back evaluation of three files at HELD=50. Outputs in WORK_DIR (default build/tune-smollm2): tune/report.html,
# tune/pareto.json, tune/pick.gguf, rss.txt, heldout/compare.md, summary.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
W="${2:-$BUILD/tune-smollm2}"
CLI="$BUILD/bin/pocketlm"
REL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
DATA="$ROOT/../shared/testdata"
LIMIT="${LIMIT:-16}" HELD="${HELD:-50}" T="${T:-2}" BUDGET="${BUDGET:-234M}" CTX="${CTX:-2048}" WORKERS="${WORKERS:-1}"
TARGETS="[Q8_0, F16, Q6_K, Q5_K_M, Q4_K_M, Q4_0, Q3_K_M]"
if [ "${SMOKE:-0}" = 1 ]; then LIMIT=4 HELD=4 TARGETS="[Q8_0, Q4_0, Q3_K_M]"; fi
for f in "$CLI" "$REL" "$DATA/tasks/summarize.dev.jsonl" "$DATA/text/wiki.test.raw"; do
  [ -e "$f" ] || { echo "error: $f missing (scripts/build.sh, scripts/fetch-models.sh)" >&2; exit 1; }
done
mkdir -p "$W"
W="$(cd "$W" && pwd)"  # absolute: the screenshot opens it as a file:// URL
log() { echo "[tune-smollm2] $*" >&2; }

# 1. The base.
BASE="$W/base-f32.gguf"
[ -f "$BASE" ] || { log "dequantizing the release to F32"; "$CLI" quantize "$REL" "$BASE" f32 -t "$T" -q > /dev/null; }

# Texts: KLD on the first half of wiki.test.raw, calibration on the second.
python3 - "$DATA/text/wiki.test.raw" "$W/kld.txt" "$W/calib.txt" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
h = len(t) // 2
open(sys.argv[2], "w", encoding="utf-8").write(t[:h])
open(sys.argv[3], "w", encoding="utf-8").write(t[h:])
PY

# 2. The budget must exclude Q8_0 and F16 (f16 KV) and keep Q4_K_M: checked with the planner.
budget_bytes=$(python3 -c "
s='$BUDGET'; m={'K':1024,'M':1024**2,'G':1024**3}
print(int(float(s[:-1])*m[s[-1].upper()]) if s[-1].upper() in m else int(s))")
for r in Q8_0 F16 Q4_K_M; do
  rss=$("$CLI" plan -m "$BASE" --recipe "$r" -c "$CTX" --device budget-phone -o json |
        python3 -c "import json,sys; print(json.load(sys.stdin)['devices'][0]['peak_rss_bytes'])")
  log "$r: predicted peak RSS $((rss / 1048576)) MiB at -c $CTX (budget $((budget_bytes / 1048576)) MiB)"
  if [ "$r" = Q4_K_M ]; then [ "$rss" -le "$budget_bytes" ] || { echo "error: Q4_K_M does not fit $BUDGET" >&2; exit 1; }
  else [ "$rss" -gt "$budget_bytes" ] || { echo "error: $r fits $BUDGET: lower BUDGET" >&2; exit 1; }; fi
done

cat > "$W/space.yaml" <<EOF2
# scripts/tune-smollm2.sh: recipes from 8 to 3.9 bits/weight, with and without an importance matrix.
targets: $TARGETS
methods: [rtn, imatrix]
kv_types: [f16]
rules: []
EOF2
TASKS="$DATA/tasks/summarize.dev.jsonl,$DATA/tasks/commit-message.dev.jsonl"
log "tune: LIMIT=$LIMIT per task, budget $BUDGET at -c $CTX, -t $T, $WORKERS worker(s)"
start=$(date +%s)
"$CLI" tune -m "$BASE" --tasks "$TASKS" --limit "$LIMIT" --budget "$BUDGET" -c "$CTX" --space "$W/space.yaml" \
  --kld-text "$W/kld.txt" --kld-ctx 512 --kld-chunks 4 --calib "$W/calib.txt" --calib-tokens 8192 \
  -o "$W/tune" -t "$T" --workers "$WORKERS" | tee "$W/tune.out"
tune_s=$(( $(date +%s) - start ))
PICK_KV=$(python3 -c "import json; print(json.load(open('$W/tune/pareto.json'))['pick_kv_type'])")
PICK=$(python3 -c "import json; print(json.load(open('$W/tune/pareto.json'))['pick'])")

# 3. The pick's measured peak RSS at -c CTX (a prompt of CTX - 4 tokens, 4 generated: the context is full).
python3 "$ROOT/scripts/prompt-of-n-tokens.py" "$CLI" "$W/tune/pick.gguf" $((CTX - 4)) "$W/prompt.txt" "$DATA/text/wiki.test.raw"
/usr/bin/time -v "$CLI" run -m "$W/tune/pick.gguf" -c "$CTX" -ctk "$PICK_KV" -ctv "$PICK_KV" -t "$T" -f "$W/prompt.txt" \
  -n 4 --ignore-eos --temp 0 --no-display-prompt > /dev/null 2> "$W/rss.err"
rss_kb=$(awk '/Maximum resident set size/ {print $NF}' "$W/rss.err")
echo "pick $PICK: peak RSS $((rss_kb / 1024)) MiB at -c $CTX (KV $PICK_KV); budget $((budget_bytes / 1048576)) MiB" | tee "$W/rss.txt"

# 4. Held-back examples: after the first LIMIT of each file.
mkdir -p "$W/heldout"
for f in summarize commit-message; do
  sed -n "$((LIMIT + 1)),$((LIMIT + HELD))p" "$DATA/tasks/$f.dev.jsonl" > "$W/heldout/$f.jsonl"
done
HTASKS="$W/heldout/summarize.jsonl,$W/heldout/commit-message.jsonl"
for r in Q4_K_M Q4_0; do  # RTN of the same base (the tune's own file when it made one)
  lower=$(echo "$r" | tr 'A-Z' 'a-z')
  if [ -f "$W/tune/models/$lower.rtn.gguf" ]; then cp "$W/tune/models/$lower.rtn.gguf" "$W/heldout/$r-rtn.gguf"
  elif [ ! -f "$W/heldout/$r-rtn.gguf" ]; then "$CLI" quantize "$BASE" "$W/heldout/$r-rtn.gguf" "$r" -t "$T" -q > /dev/null; fi
done
"$CLI" eval -m "$W/tune/pick.gguf" --tasks "$HTASKS" -o "$W/heldout/pick.jsonl" -t "$T" -c "$CTX" > /dev/null  # (eval runs an f16 KV cache: the space has only f16)
"$CLI" eval -m "$W/heldout/Q4_K_M-rtn.gguf" --tasks "$HTASKS" -o "$W/heldout/q4_k_m.jsonl" -t "$T" -c "$CTX" > /dev/null
"$CLI" eval -m "$W/heldout/Q4_0-rtn.gguf" --tasks "$HTASKS" -o "$W/heldout/q4_0.jsonl" -t "$T" -c "$CTX" > /dev/null
"$CLI" eval compare "$W/heldout/pick.jsonl" "$W/heldout/q4_k_m.jsonl" "$W/heldout/q4_0.jsonl" \
  --labels "pick:$PICK,Q4_K_M-rtn,Q4_0-rtn" -o "$W/heldout/compare.md" --json "$W/heldout/compare.json" > /dev/null

{
  echo "# pocketlm tune on SmolLM2-135M-Instruct (base: the Q4_1 release dequantized to F32)"
  echo
  echo "tune: LIMIT=$LIMIT examples per task (summarize, commit_message), budget $BUDGET at -c $CTX, -t $T, $tune_s s"
  grep -E "^(pick|jobs):" "$W/tune.out"
  cat "$W/rss.txt"
  echo
  echo "## Held-back examples ($HELD per task, after the first $LIMIT)"
  cat "$W/heldout/compare.md"
} > "$W/summary.md"
command -v chromium > /dev/null && chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$W/chromium" --window-size=1280,2600 --screenshot="$W/report.png" "file://$W/tune/report.html" 2> /dev/null || true
log "done: $W/summary.md, $W/tune/report.html${W:+, $W/report.png}"
