#!/usr/bin/env bash
# Speed of several commits of pocketlm in the same run: each REV is built (Release, its own scripts/build.sh) in
# a worktree under out/bench-commits/, then `pocketlm bench -r 1` of every build runs in turn, round after round
# (REV1 REV2 … REV1 REV2 …), so a machine whose speed drifts touches every build alike. Prints one table of
# medians per model and test with each build's ratio to the first REV, and writes it to out/bench-commits/.
# Used for "no speed regression" checks across a restructure (issue 15).
#
#   scripts/bench-commits.sh c1ff17c 0cabb1d HEAD      # ROUNDS (5), THREADS (2), TESTS ("-p 512 -n 128")
#   scripts/bench-commits.sh c1ff17c build/bin/pocketlm   # a REV may also be a pocketlm binary already built
#   MODELS="a.gguf b.gguf" scripts/bench-commits.sh …  # default: SmolLM2, Gemma 3, synthetic llama-1b Q4_K_M/Q4_0
#
# Run it on an otherwise idle machine; builds are made before the first timed round.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 2 ] || { echo "usage: $0 REV REV [REV...]" >&2; exit 2; }
ROUNDS="${ROUNDS:-5}"
THREADS="${THREADS:-2}"
TESTS="${TESTS:--p 512 -n 128}"
OUT="$ROOT/out/bench-commits"
mkdir -p "$OUT"
MODELS="${MODELS:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf $ROOT/models/gemma-3-270m-q4_k_m.gguf \
$ROOT/models/synth/llama-1b-Q4_K_M.gguf $ROOT/models/synth/llama-1b-Q4_0.gguf}"
margs=()
for m in $MODELS; do
  [ -f "$m" ] || { echo "[bench-commits] $m: no such model (scripts/fetch-models.sh, scripts/bench.sh make them)" >&2; exit 1; }
  margs+=(-m "$m")
done

# 1. One build per commit (idempotent: a worktree at the same commit is reused).
bins=()
names=()
for rev in "$@"; do
  if [ -x "$rev" ] && [ -f "$rev" ]; then  # a pocketlm binary already built (e.g. build/bin/pocketlm)
    bins+=("$(cd "$(dirname "$rev")" && pwd)/$(basename "$rev")")
    names+=("$rev")
    continue
  fi
  sha="$(git -C "$ROOT" rev-parse --short=10 "$rev^{commit}")"
  wt="$OUT/src-$sha"
  if [ ! -d "$wt" ]; then git -C "$ROOT" worktree add --detach "$wt" "$sha" >/dev/null; fi
  echo "[bench-commits] building $rev ($sha) in $wt/build" >&2
  # scripts/build.sh's configuration (Release, -Werror, native), the CLI target only
  cmake -S "$wt" -B "$wt/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPOCKETLM_WERROR=ON >/dev/null
  ninja -C "$wt/build" pocketlm_cli >/dev/null
  bins+=("$wt/build/bin/pocketlm")
  names+=("$rev ($sha)")
done

# 2. Rounds: every build once per round, one timed repetition each (after bench's own warm-up).
rm -f "$OUT"/round-*.json
for ((r = 1; r <= ROUNDS; r++)); do
  for i in "${!bins[@]}"; do
    echo "[bench-commits] round $r/$ROUNDS: ${names[$i]}" >&2
    # shellcheck disable=SC2086
    "${bins[$i]}" bench "${margs[@]}" -t "$THREADS" $TESTS -r 1 --no-bandwidth -o json > "$OUT/round-$r-$i.json"
  done
done

# 3. Medians over rounds and the ratio to the first commit.
python3 - "$OUT" "$ROUNDS" "${names[@]}" <<'PY' | tee "$OUT/bench-commits.md"
import json, os, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ts = {}  # (model, test) -> [[t/s per round] per build]
for r in range(1, rounds + 1):
    for i in range(len(names)):
        for row in json.load(open(os.path.join(out, f"round-{r}-{i}.json"))):
            key = (os.path.basename(row["model"]), row["test"])
            ts.setdefault(key, [[] for _ in names])[i] += row["samples_ts"]
head = "| model | test | " + " | ".join(f"{n} t/s" for n in names) + " | " + \
       " | ".join(f"{n} / {names[0]}" for n in names[1:]) + " |"
print(head)
print("|" + " --- |" * 2 + " ---: |" * (2 * len(names) - 1))
for (model, test), per in ts.items():
    med = [statistics.median(v) for v in per]
    cells = [f"{m:.2f} ({min(v):.2f}–{max(v):.2f})" for m, v in zip(med, per)]
    ratios = [f"**{m / med[0]:.3f}×**" for m in med[1:]]
    print(f"| {model} | {test} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
print(f"\nmedians of {rounds} rounds (min–max); each round runs every build once, in the order given")
PY
