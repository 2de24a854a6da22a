#!/usr/bin/env bash
# Issue 21's speed check (docs/architectures.md): synthetic models of the real shapes llama-3.2-1b,
# qwen2.5-0.5b and qwen3-0.6b (EXTRA_SHAPES adds others: llama-3.2-3b qwen2.5-1.5b qwen3-1.7b phi-3.5-mini
# gemma-2-2b) in Q4_K_M, pp512 and tg128 on 2 threads, pocketlm and llama.cpp interleaved in the same run, then
# llama-bench itself on the same models.
# Run it on an idle machine (the lead's benchmark run); models are made once under models/synth/.
#
#   scripts/bench-archs.sh                 # BUILD (default build/), THREADS (2), BENCH_ARGS ("-p 512 -n 128 -r 3")
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build}"
THREADS="${THREADS:-2}"
BENCH_ARGS="${BENCH_ARGS:--p 512 -n 128 -r 3}"
PLM="$BUILD/bin/pocketlm"
SYNTH="$ROOT/models/synth"
mkdir -p "$SYNTH"
models=()
for shape in llama-3.2-1b qwen2.5-0.5b qwen3-0.6b ${EXTRA_SHAPES:-}; do
  f="$SYNTH/$shape-Q4_K_M.gguf"
  [ -f "$f" ] || "$PLM" synth --shape "$shape" --type Q4_K_M --seed 1 -q -o "$f"
  models+=(-m "$f")
done
# shellcheck disable=SC2086
"$PLM" bench "${models[@]}" --peer llamacpp -t "$THREADS" $BENCH_ARGS
# llama-bench itself on the same models and tests: the peer's own figures beside the harness's
PEER_DIR="${POCKETLM_PEER_DIR:-$ROOT/.peer}"
LLAMA_BENCH="$PEER_DIR/build/bin/llama-bench"
if [ -x "$LLAMA_BENCH" ]; then
  # shellcheck disable=SC2086
  LD_LIBRARY_PATH="$PEER_DIR/build/bin" "$LLAMA_BENCH" "${models[@]}" -t "$THREADS" $BENCH_ARGS -o md 2>/dev/null
else
  echo "(llama-bench not built at $LLAMA_BENCH: scripts/build-peer.sh)"
fi
