#!/usr/bin/env bash
# The speed benchmarks, end to end: fetch the models, build, make the synthetic llama-1b and llama-3b
# models, run `pocketlm bench --peer llamacpp` (pocketlm and llama.cpp interleaved in one run) on SmolLM2-135M
# Q4_1, Gemma 3 270M Q4_K_M and synthetic llama-1b / llama-3b Q4_K_M and Q4_0 (and on 1 thread for decode),
# llama-bench itself on the same, pocketlm with its decode layout off (before/after), compare peak RSS of `pocketlm run` and `llama-completion` on llama-1b
# Q4_K_M with -c 2048, and write the results into docs/benchmarks.md (between its "bench.sh results" markers;
# raw JSON and logs go to out/bench/).
#
#   scripts/bench.sh                      # the full run: -t 2 -p 512 -n 128 -r 3, 1-thread tg64 (about 20 min)
#   BENCH_ARGS="-p 64 -n 16 -r 2" scripts/bench.sh   # a quick check with smaller tests
#
#   ISA=avx2 scripts/bench.sh             # the AVX2 table: pocketlm with POCKETLM_ISA=avx2 against llama.cpp
#                                         # built without AVX-512 (.peer-avx2, build-avx2peer; made if missing)
#
# Environment: BUILD (build dir, default build/), POCKETLM_PEER_DIR (llama.cpp build, default .peer/),
# THREADS (default 2), BENCH_ARGS (overrides "-p 512 -n 128 -r 3"), TG1 and REPS1 (the 1-thread decode test,
# default 64 tokens, 3 repetitions), NO_DOC=1 (do not touch docs/).
# Run it on an otherwise idle machine: `pocketlm bench` warns when the load average says it is not.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ISA="${ISA:-}"
case "$ISA" in
  "") BUILD="${BUILD:-$ROOT/build}"; PEER_DIR="${POCKETLM_PEER_DIR:-$ROOT/.peer}"; OUT="$ROOT/out/bench"; MARK="bench.sh results" ;;
  avx2) BUILD="${BUILD:-$ROOT/build-avx2peer}"; PEER_DIR="${POCKETLM_PEER_DIR:-$ROOT/.peer-avx2}"; OUT="$ROOT/out/bench-avx2"
        MARK="bench.sh avx2 results"; export POCKETLM_ISA=avx2 ;;
  *) echo "[bench] ISA=$ISA: expected avx2 (or unset)" >&2; exit 2 ;;
esac
THREADS="${THREADS:-2}"
BENCH_ARGS="${BENCH_ARGS:--p 512 -n 128 -r 3}"
DOC="$ROOT/docs/benchmarks.md"
SYNTH="$ROOT/models/synth"
SMOL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$OUT" "$SYNTH"

log() { echo "[bench] $*" >&2; }

# 1. Models and builds (each step is idempotent).
"$ROOT/scripts/fetch-models.sh"
if [ ! -x "$PEER_DIR/build/bin/llama-completion" ]; then
  log "llama.cpp is not built at $PEER_DIR: scripts/build-peer.sh (about ten minutes)"
  POCKETLM_PEER_DIR="$PEER_DIR" POCKETLM_PEER_ISA="${ISA:-native}" "$ROOT/scripts/build-peer.sh"
fi
"$ROOT/scripts/build.sh" "$BUILD" -DPOCKETLM_PEER_DIR="$PEER_DIR" -DPOCKETLM_MODELS_DIR="$ROOT/models"
PLM="$BUILD/bin/pocketlm"
PEER_BIN="$BUILD/bin/pocketlm-peer"
[ -x "$PEER_BIN" ] || { echo "[bench] $PEER_BIN was not built (is $PEER_DIR/build/bin/libllama.so there?)" >&2; exit 1; }

# 2. Synthetic llama-1b and llama-3b models (Llama-3.2 dims, SmolLM2's tokenizer), made once.
for shape in llama-1b llama-3b; do
  for type in Q4_K_M Q4_0; do
    f="$SYNTH/$shape-$type.gguf"
    if [ -f "$f" ]; then log "$f present"; else "$PLM" synth --shape "$shape" --type "$type" --seed 1 -o "$f"; fi
  done
done
L1B_KM="$SYNTH/llama-1b-Q4_K_M.gguf"
L1B_40="$SYNTH/llama-1b-Q4_0.gguf"
GEMMA="$ROOT/models/gemma-3-270m-q4_k_m.gguf"
MODELS=("$SMOL" "$GEMMA" "$L1B_KM" "$L1B_40" "$SYNTH/llama-3b-Q4_K_M.gguf" "$SYNTH/llama-3b-Q4_0.gguf")
LLAMA_MODELS=("$L1B_KM" "$L1B_40" "$SYNTH/llama-3b-Q4_K_M.gguf" "$SYNTH/llama-3b-Q4_0.gguf")
margs() { for m in "$@"; do printf -- '-m\n%s\n' "$m"; done; }
mapfile -t M_ALL < <(margs "${MODELS[@]}")
mapfile -t M_LLAMA < <(margs "${LLAMA_MODELS[@]}")
LLAMA_BENCH="$PEER_DIR/build/bin/llama-bench"

# 3. Speed: pocketlm bench with llama.cpp interleaved repetition by repetition (same run), on THREADS threads
#    for every model, and on 1 thread for decode on the llama models (the issue's tg64); then llama-bench
#    itself on the same models and tests, and pocketlm with its decode layout off (POCKETLM_REPACK=0: the
#    GGUF rows, as before the x16 layouts) for the before/after.
# shellcheck disable=SC2086
"$PLM" bench --peer llamacpp --peer-bin "$PEER_BIN" -t "$THREADS" $BENCH_ARGS "${M_ALL[@]}" \
  --json-out "$OUT/bench.json" | tee "$OUT/bench.md"
"$PLM" bench --peer llamacpp --peer-bin "$PEER_BIN" -t 1 -p 0 -n "${TG1:-64}" -r "${REPS1:-3}" "${M_LLAMA[@]}" \
  --json-out "$OUT/bench-t1.json" | tee "$OUT/bench-t1.md"
if [ -x "$LLAMA_BENCH" ]; then
  # shellcheck disable=SC2086
  LD_LIBRARY_PATH="$PEER_DIR/build/bin" "$LLAMA_BENCH" -t "$THREADS" $BENCH_ARGS "${M_ALL[@]}" -o md \
    2>/dev/null | tee "$OUT/llama-bench.md"
  LD_LIBRARY_PATH="$PEER_DIR/build/bin" "$LLAMA_BENCH" -t 1 -p 0 -n "${TG1:-64}" -r "${REPS1:-3}" "${M_LLAMA[@]}" -o md \
    2>/dev/null | tee "$OUT/llama-bench-t1.md"
else
  echo "(llama-bench not built at $LLAMA_BENCH)" | tee "$OUT/llama-bench.md" "$OUT/llama-bench-t1.md"
fi
if [ -n "$ISA" ]; then
  echo "(not run with ISA=$ISA)" > "$OUT/bench-rows.md"
  echo "(not run with ISA=$ISA)" > "$OUT/rss.md"
else
POCKETLM_REPACK=0 "$PLM" bench -t "$THREADS" -p 0 -n 128 -r 3 --no-bandwidth -m "$L1B_KM" -m "$L1B_40" \
  | tee "$OUT/bench-rows.md"

# 4. Peak RSS: pocketlm run vs llama-completion, same model, prompt, context and length (GNU time's %M).
PROMPT="Once upon a time, in a small village by the sea, there lived an old fisherman who"
rss_kib() {  # runs "$@" under GNU time, prints the peak RSS in KiB
  /usr/bin/time -f "%M" -o "$OUT/time.txt" "$@" >"$OUT/rss_stdout.txt" 2>"$OUT/rss_stderr.txt" || {
    echo "[bench] failed: $*" >&2; tail -5 "$OUT/rss_stderr.txt" >&2; exit 1; }
  tail -1 "$OUT/time.txt"
}
log "peak RSS: pocketlm run -c 2048"
RSS_PLM=$(rss_kib "$PLM" run -m "$L1B_KM" -c 2048 -t "$THREADS" -p "$PROMPT" -n 32 --temp 0 --ignore-eos)
log "peak RSS: llama-completion -c 2048"
RSS_LCPP=$(rss_kib "$PEER_DIR/build/bin/llama-completion" -m "$L1B_KM" -c 2048 -t "$THREADS" -p "$PROMPT" -n 32 \
  --temp 0 --ignore-eos -no-cnv)
RSS_TABLE=$(awk -v p="$RSS_PLM" -v l="$RSS_LCPP" -v t="$THREADS" 'BEGIN {
  print "| program | command | peak RSS |"; print "| --- | --- | ---: |"
  printf "| pocketlm | `pocketlm run -m llama-1b-Q4_K_M.gguf -c 2048 -t %s -n 32` | %.1f MiB |\n", t, p / 1024
  printf "| llama.cpp | `llama-completion -m llama-1b-Q4_K_M.gguf -c 2048 -t %s -n 32 -no-cnv` | %.1f MiB |\n", t, l / 1024
  printf "\npocketlm / llama.cpp: %.2f×\n", p / l }')
echo "$RSS_TABLE" | tee "$OUT/rss.md"
fi

# 5. Results into docs/benchmarks.md, between the markers (the rest of the page is hand-written).
[ "${NO_DOC:-0}" = 1 ] && exit 0
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
CPU="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
python3 - "$DOC" "$OUT" "$COMMIT" "$CPU" "$(nproc)" "$THREADS" "$BENCH_ARGS" "$MARK" "$ISA" <<'PY'
import sys, datetime, os
doc, out, commit, cpu, ncpu, threads, args, mark, isa = sys.argv[1:]
read = lambda name: open(os.path.join(out, name)).read().strip()
start, end = f"<!-- {mark}: start -->", f"<!-- {mark}: end -->"
text = open(doc).read()
if start not in text or end not in text:
    sys.exit(f"{doc}: the markers {start} / {end} are missing")
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
body = (f"{start}\n_Generated by `scripts/bench.sh` on {when}, commit {commit}, {cpu} ({ncpu} logical CPUs), "
        f"`-t {threads} {args}`{', POCKETLM_ISA=' + isa + ', llama.cpp built without AVX-512' if isa else ''}._\n\n### Speed, {threads} threads (`pocketlm bench --peer llamacpp`)\n\n{read('bench.md')}\n\n"
        f"### Decode, 1 thread (`pocketlm bench --peer llamacpp -t 1 -p 0 -n 64`)\n\n{read('bench-t1.md')}\n\n"
        f"### llama-bench itself, same models and tests\n\n{threads} threads:\n\n{read('llama-bench.md')}\n\n"
        f"1 thread:\n\n{read('llama-bench-t1.md')}\n\n"
        f"### Before: pocketlm with the GGUF row layout (`POCKETLM_REPACK=0`), same run\n\n{read('bench-rows.md')}\n\n"
        f"### Peak RSS (llama-1b Q4_K_M, -c 2048)\n\n{read('rss.md')}\n{end}")
head, rest = text.split(start, 1)
tail = rest.split(end, 1)[1]
tmp = doc + ".tmp"
open(tmp, "w").write(head + body + tail)
import os; os.replace(tmp, doc)
print(f"[bench] results written into {doc}", file=sys.stderr)
PY
