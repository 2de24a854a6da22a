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
# Usage: scripts/calibrate-plan.sh [BUILD_DIR]   (env THREADS=2, MODELS=models, SKIP_SPEED=1, REPS=3)
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
for m in "$SMOL" "$GEMMA"; do [ -f "$m" ] || { echo "error: $m missing (scripts/fetch-models.sh)" >&2; exit 1; }; done
[ -f "$LLAMA1B" ] || nice -n 10 "$CLI" synth --shape llama-1b --type Q4_K_M --tokenizer-from "$SMOL" -o "$LLAMA1B" -q

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

: > "$WORK/speed.jsonl"
if [ "${SKIP_SPEED:-0}" != 1 ]; then
  for model in "$SMOL" "$GEMMA" "$LLAMA1B"; do
    echo "== speed: $(basename "$model"): pocketlm bench pp512 tg128, -t $THREADS, $REPS repetitions" >&2
    bench=$("$CLI" bench -m "$model" -p 512 -n 128 -t "$THREADS" -r "$REPS" -o json --no-bandwidth)
    plan=$("$CLI" plan -m "$model" -c 4096 --device this -t "$THREADS" -o json)
    python3 -c 'import json,sys; b=json.loads(sys.argv[1]); p=json.loads(sys.argv[2]); d=p["devices"][0]; r={x["test"]:x["median_ts"] for x in b}; print(json.dumps({"model":sys.argv[3].split("/")[-1],"pp512_tps":r["pp512"],"tg128_tps":r["tg128"],"bandwidth_gbps":d["bandwidth_gbps"],"cpu_int8_tops":d["cpu_int8_tops"],"n_layer":p["model"]["n_layer"],**{k:d[k] for k in ("decode_bytes_per_token","decode_weight_bytes_x16","decode_kv_bytes_per_token","prefill_ops_per_token","prefill_compute_tps","prefill_memory_tps","decode_roofline_tps","decode_compute_tps","prefill_tps","decode_tps")}}))' \
      "$bench" "$plan" "$model" >> "$WORK/speed.jsonl"
    tail -1 "$WORK/speed.jsonl" >&2
  done
fi

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
    dec = [s["tg128_tps"] / min(s["decode_roofline_tps"], s["decode_compute_tps"]) for s in speed]
    # Decode: bandwidth / tg128 = x16 bytes (weights in the x16 layout + KV) / e_x16 + row bytes / e_row, by least
    # squares without intercept (the two kinds of weights stream at different speeds).
    def fit2(xs1, xs2, ys):
        s11 = sum(a * a for a in xs1); s22 = sum(b * b for b in xs2); s12 = sum(a * b for a, b in zip(xs1, xs2))
        s1y = sum(a * y for a, y in zip(xs1, ys)); s2y = sum(b * y for b, y in zip(xs2, ys))
        det = s11 * s22 - s12 * s12
        if len(ys) < 2 or det <= 0: return None
        return (s1y * s22 - s2y * s12) / det, (s11 * s2y - s12 * s1y) / det
    kv = [s["decode_kv_bytes_per_token"] for s in speed]
    x16 = [s["decode_weight_bytes_x16"] + k for s, k in zip(speed, kv)]
    row = [s["decode_bytes_per_token"] - x for s, x in zip(speed, x16)]
    yd = [s["bandwidth_gbps"] * 1e9 / s["tg128_tps"] for s in speed]
    ab = fit2(x16, row, yd)
    if ab and ab[0] > 0 and ab[1] > 0:
        cal["decode_efficiency"], cal["decode_efficiency_row"] = round(1.0 / ab[0], 3), round(1.0 / ab[1], 3)
    else:  # one kind of weights only: one efficiency for both
        cal["decode_efficiency"] = cal["decode_efficiency_row"] = round(statistics.median(dec), 3)
    # Prefill: measured ops per token y = a * F + b * L (F: matmul + attention ops per token, L: layers), by least
    # squares without intercept; efficiency = 1 / a, per-layer overhead = b / a ops (at that efficiency).
    ys = [s["cpu_int8_tops"] * 1e12 / s["pp512_tps"] for s in speed]
    fs = [s["prefill_ops_per_token"] for s in speed]
    ls = [float(s["n_layer"]) for s in speed]
    sff = sum(f * f for f in fs); sll = sum(l * l for l in ls); sfl = sum(f * l for f, l in zip(fs, ls))
    sfy = sum(f * y for f, y in zip(fs, ys)); sly = sum(l * y for l, y in zip(ls, ys))
    det = sff * sll - sfl * sfl
    a, b = ((sfy * sll - sly * sfl) / det, (sff * sly - sfl * sfy) / det) if len(speed) >= 2 and det > 0 else (0.0, -1.0)
    if b < 0 or a <= 0:  # no positive per-layer term: efficiency alone
        a, b = sfy / sff, 0.0
    cal["prefill_efficiency"] = round(1.0 / a, 4)
    cal["prefill_layer_ops"] = round(b / a, -3)
    for s, e1, f, l in zip(speed, dec, fs, ls):
        s["decode_efficiency"], s["prefill_efficiency"] = round(e1, 3), round(s["pp512_tps"] * f / (s["cpu_int8_tops"] * 1e12), 4)
        slow = x16[speed.index(s)] / cal["decode_efficiency"] + row[speed.index(s)] / cal["decode_efficiency_row"]
        s["predicted_decode_tps"] = round(min(s["bandwidth_gbps"] * 1e9 / slow, cal["decode_efficiency"] * s["decode_compute_tps"]), 2)
        s["predicted_prefill_tps"] = round(cal["prefill_efficiency"] * min(s["cpu_int8_tops"] * 1e12 / (f + cal["prefill_layer_ops"] * l),
                                                                       s["prefill_memory_tps"]), 2)
        for k in ("prefill_tps", "decode_tps"): s.pop(k, None)
else:
    cal["decode_efficiency"] = prev.get("decode_efficiency", 0.6)
    cal["decode_efficiency_row"] = prev.get("decode_efficiency_row", cal["decode_efficiency"])
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
         "    .decode_efficiency = %.3f,\n    .decode_efficiency_row = %.3f,\n    .prefill_efficiency = %.4f,\n"
         "    .prefill_layer_ops = %.1f,\n};\n") % (
    data["date"], data["load_average"], cal["overhead_fixed_bytes"], cal["overhead_per_vocab_bytes"],
    cal["decode_efficiency"], cal["decode_efficiency_row"], cal["prefill_efficiency"], cal["prefill_layer_ops"])
tmp = header_path + ".tmp"
open(tmp, "w").write(h[:a] + block + h[b:]); os.replace(tmp, header_path)
print(json.dumps(cal, indent=2))
for m in mem: print("%-28s measured %8.1f MiB  predicted %8.1f MiB  %+.1f %%" % (m["case"], m["measured_rss_bytes"] / 2**20, m["predicted_rss_bytes"] / 2**20, m["error_pct"]))
for s in speed: print("%-36s pp512 %7.1f (pred %7.1f)  tg128 %6.1f (pred %6.1f)" % (s["model"], s["pp512_tps"], s.get("predicted_prefill_tps", 0), s["tg128_tps"], s.get("predicted_decode_tps", 0)))
PY
echo "wrote $OUT and src/plan/calibration.h: rebuild to use the new constants" >&2
