#!/usr/bin/env bash
# Fits the planner's constants (src/plan/calibration.h) from measurements on this machine and keeps the data
# in docs/plan-calibration.json:
#   memory: peak RSS (/usr/bin/time -v) of `pocketlm run` with a prompt that fills the context, for the
#           issue's cases; the runtime overhead (fixed + per vocabulary entry) is fitted by least squares to
#           what the weights, KV cache, scratch and metadata do not explain;
#   speed:  `pocketlm bench` pp512 / tg128 against the planner's bounds for `--device this` (the same run);
#           the efficiencies are the median ratios. Run it on an IDLE machine: speeds are load-sensitive
#           (peak RSS is not).
# Then rebuild: the constants are compiled in.
# Usage: scripts/calibrate-plan.sh [BUILD_DIR]   (env THREADS=2, MODELS=models, SKIP_SPEED=1, REPS=3, FIT_ONLY=1,
#        ACCUMULATE=1, SKIP_MEMORY=1)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
CLI="$BUILD/bin/pocketlm"
MODELS="${MODELS:-$ROOT/models}"
THREADS="${THREADS:-2}"
REPS="${REPS:-3}"
WORK="$BUILD/plan-calibration"
OUT="$ROOT/docs/plan-calibration.json"
TEXT="$ROOT/../shared/testdata/text/wiki.test.raw"
[ -f "$TEXT" ] || TEXT="/work/shared/testdata/text/wiki.test.raw"
mkdir -p "$WORK"
[ -x "$CLI" ] || { echo "error: $CLI not built (scripts/build.sh $BUILD)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

SMOL="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA="$MODELS/gemma-3-270m-q4_k_m.gguf"
LLAMA1B="$WORK/synth-llama-1b-Q4_K_M.gguf"
LLAMA1B_ROW="$WORK/synth-llama-1b-Q5_K_S.gguf"  # q5_K: read row by row (no x16 decode layout), for the row efficiency
for m in "$SMOL" "$GEMMA"; do [ -f "$m" ] || { echo "error: $m missing (scripts/fetch-models.sh)" >&2; exit 1; }; done
[ -f "$LLAMA1B" ] || nice -n 10 "$CLI" synth --shape llama-1b --type Q4_K_M --tokenizer-from "$SMOL" -o "$LLAMA1B" -q
[ -f "$LLAMA1B_ROW" ] || nice -n 10 "$CLI" synth --shape llama-1b --type Q5_K_S --tokenizer-from "$SMOL" -o "$LLAMA1B_ROW" -q

# A prompt of exactly N tokens (N = context - 4, so the 4 generated tokens fill the context): a prefix of the
# wiki text, its length refined until the tokenizer gives N tokens.
make_prompt() {  # model n_tokens out
  python3 "$ROOT/scripts/prompt-of-n-tokens.py" "$CLI" "$1" "$2" "$3" "$TEXT"
}

CASES=(
  "smollm2-c2048-f16 $SMOL 2048 f16"
  "smollm2-c8192-q8 $SMOL 8192 q8"
  "gemma3-270m-c8192-f16 $GEMMA 8192 f16"
  "gemma3-270m-c8192-q8 $GEMMA 8192 q8"
  "llama-1b-Q4_K_M-c4096-f16 $LLAMA1B 4096 f16"
)
if [ "${FIT_ONLY:-0}" != 1 ]; then  # FIT_ONLY=1: refit from the measurements of the last run ($WORK/*.jsonl)
if [ "${SKIP_MEMORY:-0}" != 1 ] || [ ! -s "$WORK/memory.jsonl" ]; then  # SKIP_MEMORY=1: keep the last run's peak RSS
: > "$WORK/memory.jsonl"
for c in "${CASES[@]}"; do
  read -r name model ctx kv <<< "$c"
  prompt="$WORK/prompt-$name.txt"
  make_prompt "$model" $((ctx - 4)) "$prompt"
  echo "== $name: pocketlm run -c $ctx -ctk $kv -ctv $kv (prompt fills the context)" >&2
  /usr/bin/time -v "$CLI" run -m "$model" -c "$ctx" -ctk "$kv" -ctv "$kv" -t "$THREADS" -f "$prompt" -n 4 --ignore-eos \
    --temp 0 --no-display-prompt > /dev/null 2> "$WORK/run-$name.err"
  rss_kib=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$WORK/run-$name.err")
  plan=$("$CLI" plan -m "$model" -c "$ctx" -ctk "$kv" -ctv "$kv" --device this -t "$THREADS" -o json)
  python3 -c 'import json,sys; p=json.loads(sys.argv[1]); d=p["devices"][0]; print(json.dumps({"case":sys.argv[2],"model":sys.argv[3].split("/")[-1],"n_ctx":int(sys.argv[4]),"kv":sys.argv[5],"measured_rss_bytes":int(sys.argv[6])*1024,"n_vocab":p["model"]["n_vocab"],**{k:d[k] for k in ("weights_bytes","kv_bytes","scratch_bytes","metadata_bytes","overhead_bytes","peak_rss_bytes")}}))' \
    "$plan" "$name" "$model" "$ctx" "$kv" "$rss_kib" >> "$WORK/memory.jsonl"
  tail -1 "$WORK/memory.jsonl" >&2
done
fi

# ACCUMULATE=1 keeps the speed points of earlier runs (a VM whose bandwidth moves between states: a fit over
# both states predicts both; each point carries its own probe).
[ "${ACCUMULATE:-0}" = 1 ] && [ -f "$WORK/speed.jsonl" ] || : > "$WORK/speed.jsonl"
# Each model at -t $THREADS (pp512 and tg128) and at -t 1 (tg64 only): on one thread the decode kernels are
# limited by the core, on all of them by the memory, which separates the two limits in the fit. The bandwidth is
# probed just before and just after each benchmark (a VM's bandwidth can move by 2x within minutes); a
# measurement whose two probes differ by more than 10 % is repeated once, then kept but left out of the fit.
speed_point() {  # model threads pp tg
  local model="$1" t="$2" pp="$3" tg="$4" try before bench after
  for try in 1 2; do
    before=$("$CLI" plan -m "$model" -c 4096 --device this -t "$t" -o json)
    bench=$("$CLI" bench -m "$model" -p "$pp" -n "$tg" -t "$t" -r "$REPS" -o json --no-bandwidth)
    after=$("$CLI" plan -m "$model" -c 4096 --device this -t "$t" -o json)
    python3 - "$before" "$bench" "$after" "$model" "$t" "$pp" "$tg" > "$WORK/point.json" <<'PYP'
import json, sys
p, b, q = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
d, e = p["devices"][0], q["devices"][0]
r = {x["test"]: x["median_ts"] for x in b}
pp, tg = int(sys.argv[6]), int(sys.argv[7])
bw0, bw1 = d["bandwidth_gbps"], e["bandwidth_gbps"]
out = {"model": sys.argv[4].split("/")[-1], "threads": int(sys.argv[5]),
       "pp512_tps": r.get("pp%d" % pp) if pp else None, "tg128_tps": r["tg%d" % tg], "tg_tokens": tg,
       "bandwidth_gbps": (bw0 + bw1) / 2, "bandwidth_before_gbps": bw0, "bandwidth_after_gbps": bw1,
       "bandwidth_moved": abs(bw1 - bw0) > 0.1 * min(bw0, bw1),
       "cpu_int8_tops": d["cpu_int8_tops"], "n_layer": p["model"]["n_layer"]}
for k in ("decode_bytes_per_token", "decode_weight_bytes_x16", "decode_kv_bytes_per_token", "prefill_ops_per_token",
          "prefill_compute_tps", "prefill_memory_tps", "decode_roofline_tps", "decode_compute_tps"):
    out[k] = d[k]
print(json.dumps(out))
PYP
    python3 -c 'import json,sys; sys.exit(1 if json.load(open(sys.argv[1]))["bandwidth_moved"] else 0)' "$WORK/point.json" && break
    echo "   the bandwidth moved during the measurement: repeating it" >&2
  done
  cat "$WORK/point.json" >> "$WORK/speed.jsonl"
  tail -1 "$WORK/speed.jsonl" >&2
}
if [ "${SKIP_SPEED:-0}" != 1 ]; then
  for model in "$SMOL" "$GEMMA" "$LLAMA1B" "$LLAMA1B_ROW"; do
    echo "== speed: $(basename "$model"): pocketlm bench pp512 tg128 at -t $THREADS, tg64 at -t 1, $REPS repetitions" >&2
    speed_point "$model" "$THREADS" 512 128
    [ "$THREADS" != 1 ] && speed_point "$model" 1 0 64
  done
fi
fi  # FIT_ONLY

# Fit, record, and write the generated block of src/plan/calibration.h.
python3 - "$WORK/memory.jsonl" "$WORK/speed.jsonl" "$OUT" "$ROOT/src/plan/calibration.h" "$THREADS" <<'PY'
import json, os, statistics, sys, datetime, platform
mem = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
speed = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
out_path, header_path, threads = sys.argv[3], sys.argv[4], int(sys.argv[5])
old = json.load(open(out_path)) if os.path.exists(out_path) else {}
# residual = measured - (weights + kv + scratch + metadata) = fixed + per_vocab * n_vocab (least squares)
xs = [m["n_vocab"] for m in mem]
ys = [m["measured_rss_bytes"] - (m["weights_bytes"] + m["kv_bytes"] + m["scratch_bytes"] + m["metadata_bytes"]) for m in mem]
n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
sxx = sum((x - mx) ** 2 for x in xs)
per_vocab = max(0.0, sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx) if sxx > 0 else 0.0
fixed = max(0.0, my - per_vocab * mx)
for m in mem:
    pred = m["weights_bytes"] + m["kv_bytes"] + m["scratch_bytes"] + m["metadata_bytes"] + fixed + per_vocab * m["n_vocab"]
    m["predicted_rss_bytes"] = int(pred)
    m["error_pct"] = round(100.0 * (pred - m["measured_rss_bytes"]) / m["measured_rss_bytes"], 2)
cal = {"overhead_fixed_bytes": round(fixed, -3), "overhead_per_vocab_bytes": round(per_vocab, 1)}
prev = old.get("constants", {})
if speed:
    # Decode, seconds per token = max(memory, core) + n_layer x decode_layer_ops / (ops / threads), where
    #   memory = (weights + KV) / (decode_efficiency x bandwidth): what the memory system delivers;
    #   core   = x16 bytes / (decode_bytes_per_op x ops) + row bytes / (decode_bytes_per_op_row x ops): how fast
    #            the cores' kernels consume weights (one core cannot use the whole bandwidth; row-by-row types
    #            are slower), ops = the CPU's int8 ops/s at the thread count;
    #   per layer, with more than one thread: the fork/join of the layer's parallel steps, at one core's speed
    #   (it does not shrink with threads; without it, SmolLM2 decoded as fast on 1 thread as on 2 and did not
    #   speed up when the bandwidth doubled). Fitted by minimising the squared log error (Nelder-Mead), on the points whose probe held still.
    import math
    fit_pts = [s for s in speed if not s.get("bandwidth_moved")]
    def parts(s):
        kv = s["decode_kv_bytes_per_token"]; x16 = s["decode_weight_bytes_x16"] + kv
        return x16, s["decode_bytes_per_token"] - x16, s["bandwidth_gbps"] * 1e9, s["cpu_int8_tops"] * 1e12
    def decode_tps(s, e, bx, br, c):
        x16, row, bw, ops = parts(s)
        t = s.get("threads", threads)
        sync = s["n_layer"] * c / (ops / t) if t > 1 else 0.0  # a fork/join per layer, at one core's speed
        return 1.0 / (max((x16 + row) / (e * bw), x16 / (bx * ops) + row / (br * ops)) + sync)
    def loss(v):
        e, bx, br, c = [math.exp(u) for u in v]
        return sum(math.log(decode_tps(s, e, bx, br, c) / s["tg128_tps"]) ** 2 for s in fit_pts)
    def nelder_mead(f, x0, step=0.5, iters=4000):
        n = len(x0); pts = [list(x0)] + [[x0[j] + (step if j == i else 0) for j in range(n)] for i in range(n)]
        vals = [f(p) for p in pts]
        for _ in range(iters):
            order = sorted(range(n + 1), key=lambda i: vals[i]); pts = [pts[i] for i in order]; vals = [vals[i] for i in order]
            cen = [sum(p[j] for p in pts[:-1]) / n for j in range(n)]
            refl = [cen[j] + (cen[j] - pts[-1][j]) for j in range(n)]; fr = f(refl)
            if fr < vals[0]:
                exp_ = [cen[j] + 2 * (cen[j] - pts[-1][j]) for j in range(n)]; fe = f(exp_)
                pts[-1], vals[-1] = (exp_, fe) if fe < fr else (refl, fr)
            elif fr < vals[-2]:
                pts[-1], vals[-1] = refl, fr
            else:
                con = [cen[j] + 0.5 * (pts[-1][j] - cen[j]) for j in range(n)]; fc = f(con)
                if fc < vals[-1]:
                    pts[-1], vals[-1] = con, fc
                else:
                    pts = [pts[0]] + [[pts[0][j] + 0.5 * (p[j] - pts[0][j]) for j in range(n)] for p in pts[1:]]
                    vals = [vals[0]] + [f(p) for p in pts[1:]]
        return pts[0]
    best = None
    for start in ([0.0, -3.0, -5.0, 17.0], [-0.5, -2.0, -4.0, 15.0], [0.0, -4.0, -4.0, 18.0]):
        v = nelder_mead(loss, start)
        if best is None or loss(v) < loss(best): best = v
    e, bx, br, c = [math.exp(u) for u in best]
    cal["decode_efficiency"], cal["decode_bytes_per_op"] = round(e, 3), float("%.4g" % bx)
    cal["decode_bytes_per_op_row"], cal["decode_layer_ops"] = float("%.4g" % br), round(c, -3)
    dec = [s["tg128_tps"] / min(s["decode_roofline_tps"], s["decode_compute_tps"]) for s in speed]
    # Prefill: measured ops per token y = a * F + b * L (F: matmul + attention ops per token, L: layers), by least
    # squares without intercept; efficiency = 1 / a, per-layer overhead = b / a ops (at that efficiency).
    # The row-type model (q5_K) is left out: its prefill runs without the int8 batch GEMMs the others use, and
    # the planner has one prefill efficiency (it over-predicts such types: docs/plan.md).
    pre = [s for s in speed if "Q5_K_S" not in s["model"] and s.get("pp512_tps") and not s.get("bandwidth_moved")]
    ys = [s["cpu_int8_tops"] * 1e12 / s["pp512_tps"] for s in pre]
    fs = [s["prefill_ops_per_token"] for s in pre]
    ls = [float(s["n_layer"]) for s in pre]
    sff = sum(f * f for f in fs); sll = sum(l * l for l in ls); sfl = sum(f * l for f, l in zip(fs, ls))
    sfy = sum(f * y for f, y in zip(fs, ys)); sly = sum(l * y for l, y in zip(ls, ys))
    det = sff * sll - sfl * sfl
    a, b = ((sfy * sll - sly * sfl) / det, (sff * sly - sfl * sfy) / det) if len(pre) >= 2 and det > 0 else (0.0, -1.0)
    if b < 0 or a <= 0:  # no positive per-layer term: efficiency alone
        a, b = sfy / sff, 0.0
    cal["prefill_efficiency"] = round(1.0 / a, 4)
    cal["prefill_layer_ops"] = round(b / a, -3)
    for s, e1 in zip(speed, dec):
        f, l = s["prefill_ops_per_token"], float(s["n_layer"])
        s["decode_efficiency"] = round(e1, 3)
        s["predicted_decode_tps"] = round(decode_tps(s, e, bx, br, c), 2)
        if s.get("pp512_tps"):
            s["prefill_efficiency"] = round(s["pp512_tps"] * f / (s["cpu_int8_tops"] * 1e12), 4)
            s["predicted_prefill_tps"] = round(cal["prefill_efficiency"] * min(s["cpu_int8_tops"] * 1e12 / (f + cal["prefill_layer_ops"] * l),
                                                                           s["prefill_memory_tps"]), 2)
        for k in ("prefill_tps", "decode_tps"): s.pop(k, None)
else:
    cal["decode_efficiency"] = prev.get("decode_efficiency", 0.6)
    for k in ("decode_bytes_per_op", "decode_bytes_per_op_row", "decode_layer_ops"): cal[k] = prev.get(k, 0.0)
    cal["prefill_efficiency"] = prev.get("prefill_efficiency", 0.3)
    cal["prefill_layer_ops"] = prev.get("prefill_layer_ops", 0.0)
    speed = old.get("speed", [])
data = {"generated_by": "scripts/calibrate-plan.sh", "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(), "threads": threads, "load_average": os.getloadavg()[0],
        "constants": cal, "memory": mem, "speed": speed}
tmp = out_path + ".tmp"
open(tmp, "w").write(json.dumps(data, indent=2) + "\n"); os.replace(tmp, out_path)
h = open(header_path).read()
a, b = h.index("// BEGIN GENERATED"), h.index("// END GENERATED")
block = ("// BEGIN GENERATED (scripts/calibrate-plan.sh, %s, load average %.1f)\n"
         "inline constexpr PlanCalibration kPlanCalibration{\n"
         "    .overhead_fixed_bytes = %.1f,\n    .overhead_per_vocab_bytes = %.1f,\n"
         "    .decode_efficiency = %.3f,\n    .decode_bytes_per_op = %.4g,\n    .decode_bytes_per_op_row = %.4g,\n"
         "    .decode_layer_ops = %.1f,\n    .prefill_efficiency = %.4f,\n    .prefill_layer_ops = %.1f,\n};\n") % (
    data["date"], data["load_average"], cal["overhead_fixed_bytes"], cal["overhead_per_vocab_bytes"],
    cal["decode_efficiency"], cal["decode_bytes_per_op"], cal["decode_bytes_per_op_row"], cal["decode_layer_ops"],
    cal["prefill_efficiency"], cal["prefill_layer_ops"])
tmp = header_path + ".tmp"
open(tmp, "w").write(h[:a] + block + h[b:]); os.replace(tmp, header_path)
print(json.dumps(cal, indent=2))
for m in mem: print("%-28s measured %8.1f MiB  predicted %8.1f MiB  %+.1f %%" % (m["case"], m["measured_rss_bytes"] / 2**20, m["predicted_rss_bytes"] / 2**20, m["error_pct"]))
for s in speed: print("%-36s -t %d  %5.1f GB/s%s  pp512 %7.1f (pred %7.1f)  tg%d %6.1f (pred %6.1f)" % (s["model"], s.get("threads", threads), s["bandwidth_gbps"], " moved" if s.get("bandwidth_moved") else "", s.get("pp512_tps") or 0, s.get("predicted_prefill_tps", 0), s.get("tg_tokens", 128), s["tg128_tps"], s.get("predicted_decode_tps", 0)))
PY
echo "wrote $OUT and src/plan/calibration.h: rebuild to use the new constants" >&2
