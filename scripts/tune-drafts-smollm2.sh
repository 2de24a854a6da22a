#!/usr/bin/env bash
# Draft choices and prune levels in `pocketlm tune` on SmolLM2 (docs/tune.md, "Draft choices", "Prune levels"):
# for the lead to run on an IDLE machine (the measured tokens/s are timing).
#
#   1. base: the SmolLM2-135M-Instruct release (Q4_1) dequantized to F32 (itself a quantized release);
#   2. tune over the summarize and commit-message dev tasks with a space of three targets, two prune levels and
#      four draft choices; the draft measurement on $SPEED examples per finalist;
#   3. the pick with its best draft against plain decoding with `pocketlm bench` (same process, alternating), so
#      the predicted speedup in pareto.json stands next to a measured one.
#
# Usage: scripts/tune-drafts-smollm2.sh [BUILD_DIR] [WORK_DIR]
#   env: LIMIT (examples per task, 8), SPEED (speed examples, 4), T (threads, 2), BUDGET (234M), CTX (2048)
# Time (estimate, 2-core machine, idle): ~15 min (two calibration passes for the prune levels, ~12 candidates).
# Outputs in WORK_DIR (default build/tune-drafts-smollm2): tune/pareto.json, tune/speed.json, tune/report.html,
# bench.txt, summary.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
W="${2:-$BUILD/tune-drafts-smollm2}"
CLI="$BUILD/bin/pocketlm"
REL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
DATA="$ROOT/../shared/testdata"
LIMIT="${LIMIT:-8}" SPEED="${SPEED:-4}" T="${T:-2}" BUDGET="${BUDGET:-234M}" CTX="${CTX:-2048}"
for f in "$CLI" "$REL" "$DATA/tasks/summarize.dev.jsonl" "$DATA/text/wiki.test.raw"; do
  [ -e "$f" ] || { echo "error: $f missing (scripts/build.sh, scripts/fetch-models.sh)" >&2; exit 1; }
done
mkdir -p "$W"
W="$(cd "$W" && pwd)"
BASE="$W/base-f32.gguf"
[ -f "$BASE" ] || "$CLI" quantize "$REL" "$BASE" f32 -t "$T" -q > /dev/null
head -c 400000 "$DATA/text/wiki.test.raw" > "$W/calib.txt"

cat > "$W/space.yaml" <<'EOF'
targets: [Q8_0, Q4_K_M, Q4_0]
methods: [rtn]
rules: []
prune: [none, {drop: 2}, {ffn_keep: 0.75, repair: true}]
drafts: [none, lookup, {self: q4_0}, {self: q4_0, layers: 15}]
EOF
"$CLI" tune -m "$BASE" --tasks "$DATA/tasks/summarize.dev.jsonl,$DATA/tasks/commit-message.dev.jsonl" \
  --limit "$LIMIT" --budget "$BUDGET" -c "$CTX" --space "$W/space.yaml" --calib "$W/calib.txt" \
  --calib-tokens 4096 --calib-ctx 512 --speed-examples "$SPEED" -o "$W/tune" -t "$T"

# The pick with its best draft, measured against plain decoding on a summarize prompt.
read -r PICK_DRAFT FLAGS < <(python3 - "$W/tune/pareto.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
row = next(c for c in p["candidates"] if c["id"] == p["pick"])
flags = next((d["flags"] for d in row.get("drafts", []) if d["draft"] == p["pick_draft"]), "")
print(p["pick_draft"], flags)
PY
)
python3 -c "
import json; ex = json.loads(open('$DATA/tasks/summarize.dev.jsonl').readline())
open('$W/prompt.txt', 'w').write(ex.get('input') or ex.get('prompt') or json.dumps(ex))"
if [ "$PICK_DRAFT" != none ]; then
  # shellcheck disable=SC2086
  "$CLI" bench -m "$W/tune/pick.gguf" $FLAGS -n 128 -t "$T" -r 3 --spec-prompt-file "$W/prompt.txt" | tee "$W/bench.txt"
fi

python3 - "$W/tune/pareto.json" "$W/tune/speed.json" > "$W/summary.md" <<'PY'
import json, sys
p, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
tps = {(c["id"], d["draft"]): d.get("measured_tps") for c in s["candidates"] for d in c["drafts"]}
print(f"pick {p['pick']} with draft {p['pick_draft']}: `{p['pick_command']}`\n")
print("| candidate | prune | file MiB | score | draft | fits | accepted/drafted | predicted speedup | measured t/s |")
print("|---|---|---:|---:|---|---|---:|---:|---:|")
for c in p["candidates"]:
    for d in c.get("drafts", []):
        acc = f"{d['accepted']}/{d['drafted']}" if "drafted" in d else ""
        sp = f"{d['predicted_speedup']:.2f}" if "predicted_speedup" in d else ""
        t = tps.get((c["id"], d["draft"]))
        print(f"| {c['id']} | {c['prune'] or ''} | {c['file_bytes'] / 2**20:.1f} | {c['score']['mean']:.2f} | "
              f"{d['draft']} | {d['fits']} | {acc} | {sp} | {'' if t is None else f'{t:.1f}'} |")
PY
cat "$W/summary.md"
