#!/usr/bin/env bash
# Continuous batching under load: pocketlm serve --parallel 4 vs --parallel 1 vs llama-server -np 4, the same
# model, threads and per-sequence context, in one run (docs/server.md). Each: 16 clients x 8 streaming greedy
# requests (scripts/server-load.py): aggregate generated tokens/s, every request completed, outputs equal to the
# single-client outputs, server RSS after warm-up vs at the end. Run on an idle machine.
#
# Usage: scripts/bench-server.sh [MODEL] [-- extra]   env: CLIENTS=16 REQUESTS=8 MAX_TOKENS=64 THREADS=2 CTX=1024
#        SECONDS_PER_RUN=0 (> 0: clients go on for that long, e.g. 120, instead of REQUESTS each) PEER=1 (0: skip llama-server)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODEL="${1:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
CLIENTS="${CLIENTS:-16}" REQUESTS="${REQUESTS:-8}" MAX_TOKENS="${MAX_TOKENS:-64}" THREADS="${THREADS:-2}" CTX="${CTX:-1024}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-0}" PEER="${PEER:-1}" PORT="${PORT:-18680}"
CLI="$ROOT/build/bin/pocketlm"
LLAMA="${LLAMA_SERVER:-$ROOT/.peer/build/bin/llama-server}"
OUT="${OUT:-$ROOT/out/bench-server}"
mkdir -p "$OUT"
[ -x "$CLI" ] || { echo "error: $CLI is missing (scripts/build.sh)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "error: $MODEL is missing (scripts/fetch-models.sh)" >&2; exit 1; }

SERVER_PID=""
stop_server() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi; }
trap stop_server EXIT

wait_ready() {  # /health 200 within 120 s
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "error: the server exited" >&2; return 1; }
    sleep 0.2
  done
  echo "error: the server did not become ready" >&2; return 1
}

run_one() {  # NAME, then the server command
  local name="$1"; shift
  echo "[bench-server] $name: $*" >&2
  "$@" >"$OUT/$name.log" 2>&1 &
  SERVER_PID=$!
  wait_ready
  python3 "$ROOT/scripts/server-load.py" --url "http://127.0.0.1:$PORT" --clients "$CLIENTS" --requests "$REQUESTS" \
    --max-tokens "$MAX_TOKENS" --seconds "$SECONDS_PER_RUN" --pid "$SERVER_PID" --json "$OUT/$name.json"
  stop_server
}

run_one pocketlm-np4 "$CLI" serve -m "$MODEL" --port "$PORT" -t "$THREADS" -c "$CTX" --parallel 4
run_one pocketlm-np1 "$CLI" serve -m "$MODEL" --port "$PORT" -t "$THREADS" -c "$CTX" --parallel 1
if [ "$PEER" = 1 ] && [ -x "$LLAMA" ]; then
  # llama-server's -c is the total context its -np slots share: 4 x CTX gives each slot CTX, as pocketlm's -c.
  run_one llama-server-np4 "$LLAMA" -m "$MODEL" --port "$PORT" -t "$THREADS" -c $((4 * CTX)) -np 4 --no-webui
fi

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for name in ["pocketlm-np4", "pocketlm-np1", "llama-server-np4"]:
    p = os.path.join(out, name + ".json")
    if os.path.exists(p):
        rows.append((name, json.load(open(p))))
print(f"{'server':18} {'done/sent':>10} {'tokens/s':>9} {'differ':>7} {'RSS warm':>9} {'RSS end':>9} {'change':>7}  statuses")
for name, r in rows:
    mib = 1 / (1024 * 1024)
    print(f"{name:18} {r['completed']:>4}/{r['requests']:<5} {r['tokens_per_second']:9.1f} {r['differ_from_single_client']:7d} "
          f"{r['rss_after_warmup'] * mib:8.1f}M {r['rss_end'] * mib:8.1f}M {100 * r['rss_change']:6.1f}%  {r['statuses']}")
by = dict(rows)
if "pocketlm-np4" in by and "pocketlm-np1" in by and by["pocketlm-np1"]["tokens_per_second"] > 0:
    print(f"batching gain (np4 / np1): {by['pocketlm-np4']['tokens_per_second'] / by['pocketlm-np1']['tokens_per_second']:.2f}x")
if "pocketlm-np4" in by and "llama-server-np4" in by and by["llama-server-np4"]["tokens_per_second"] > 0:
    print(f"pocketlm / llama-server at 4 parallel: {by['pocketlm-np4']['tokens_per_second'] / by['llama-server-np4']['tokens_per_second']:.2f}x")
PY
