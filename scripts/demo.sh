#!/usr/bin/env bash
# README command 1: installs everything, fetches the default model (SmolLM2-135M-Instruct Q4_1) and runs it:
# one chat turn and one greedy completion, printing speed and peak memory.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/fetch-models.sh"
"$ROOT/scripts/build.sh" "$ROOT/build"
MODEL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
BIN="$ROOT/build/bin/pocketlm"
echo; echo "== pocketlm chat (one turn, greedy) =="
"$BIN" chat -m "$MODEL" -c 2048 --temp 0 -n 96 -p "${DEMO_PROMPT:-Give me three tips for keeping a phone battery healthy.}"
echo; echo "== pocketlm run (greedy completion) =="
"$BIN" run -m "$MODEL" -c 2048 --temp 0 -n 48 -p "The three most important things about on-device inference are"
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo; echo "== interactive chat (Ctrl-D to quit) =="
  "$BIN" chat -m "$MODEL" -c 2048
fi
