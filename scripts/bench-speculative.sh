#!/usr/bin/env bash
# Issue 16's speed figures (docs/speculative.md), in one run: SmolLM2 dequantized to F16 as the target with its
# q4_0 self-draft, and SmolLM2 Q4_1 with prompt lookup on the first summarize and commit-message dev prompts,
# each as `pocketlm bench` (plain and speculative generation of the same target, alternated repetition by
# repetition) with llama.cpp's own speculative decoding on the same pair (--peer llamacpp:
# llama-speculative-simple for a draft model, llama-lookup for lookup). Run it on an idle machine.
#
#   scripts/bench-speculative.sh        # BUILD (build/), THREADS (2), REPS (3), N (128); out/bench-spec/
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build}"
THREADS="${THREADS:-2}"
REPS="${REPS:-3}"
N="${N:-128}"
PLM="$BUILD/bin/pocketlm"
DATA="$ROOT/../shared/testdata"
OUT="$ROOT/out/bench-spec"
SMOL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
F16="$ROOT/models/smollm2-f16.gguf"
mkdir -p "$OUT"
[ -f "$SMOL" ] || "$ROOT/scripts/fetch-models.sh"
[ -f "$F16" ] || "$PLM" quantize --pure "$SMOL" "$F16" F16

# The prompts: the first record of each dev set, then its instruction line (as docs/speculative.md says).
python3 - "$DATA/tasks" "$OUT" <<'PY'
import json, os, sys
tasks, out = sys.argv[1:]
for name, line in (("summarize", "Summarize the conversation above."),
                   ("commit-message", "Write the commit message for the change above.")):
    ex = json.loads(open(os.path.join(tasks, f"{name}.dev.jsonl")).readline())
    open(os.path.join(out, f"{name}.prompt.txt"), "w").write(ex["input"].rstrip() + "\n\n" + line + "\n")
PY

run() {  # name, then pocketlm bench arguments
  local name="$1"; shift
  echo "== $name" >&2
  "$PLM" bench "$@" -n "$N" -t "$THREADS" -r "$REPS" --peer llamacpp --json-out "$OUT/$name.json" | tee "$OUT/$name.md"
}
run self-draft-q4_0 -m "$F16" --draft-self q4_0
run lookup-summarize -m "$SMOL" --lookup --spec-prompt-file "$OUT/summarize.prompt.txt"
run lookup-commit-message -m "$SMOL" --lookup --spec-prompt-file "$OUT/commit-message.prompt.txt"
