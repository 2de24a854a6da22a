#!/usr/bin/env bash
# Installs every system and Python package pocketlm needs to build, test and compare.
# Idempotent: skips what is already present. Run as root (or with sudo available).
set -euo pipefail

DEB_PKGS=(
  build-essential cmake ninja-build pkg-config git
  ccache                              # compiler cache: CI builds of an unchanged file are hits (CMakeLists.txt)
  python3                             # scripts/check-layers.py, the metric oracles
  clang-format-14                     # .clang-format (the code's style; apply to the files you change)
  libgtest-dev libgmock-dev libbenchmark-dev   # tests; Google Benchmark for bench/kernels
  time                                # GNU time: peak RSS in scripts/bench.sh
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libyaml-cpp-dev                     # YAML rule files (pocketlm quantize --rules FILE.yaml)
  clang libclang-rt-14-dev            # libFuzzer + sanitizer runtimes
  g++-aarch64-linux-gnu qemu-user     # ARM NEON/dotprod/i8mm builds and tests
  libpcre2-dev                        # Unicode-aware regex (\p{L}, \p{N}) for BPE pre-tokenizers
  unicode-data                        # UnicodeData.txt for the tokenizer tables
  librsvg2-bin                        # rsvg-convert: eval compare plots (SVG) to PNG for a look
  libcpp-httplib-dev                  # pocketlm serve's HTTP server (cpp-httplib)
  chromium                            # headless: the test of pocketlm serve's chat page (tests/e2e/chat_page_e2e.py)
)
PY_PKGS=(numpy "gguf==0.19.0" "sacrebleu==2.6.0" "rouge-score==0.1.2"  # last two: task-metric oracles
         "openai==1.58.1" "pytest==9.2.0"   # the client tests of pocketlm serve; the Python binding's tests
         "lm-eval[api]==0.4.13"             # lm-eval's local-completions against pocketlm serve (docs/server.md)
         "ray==2.60.0")                     # pocketlm tune --ray (python/pocketlm_tune_ray.py) and its two-node test

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[install-deps] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The ARM build of the C example links Debian's arm64 PCRE2 (multiarch; scripts/test-arm.sh).
if ! dpkg-query -W -f='${Status}' libpcre2-dev:arm64 2>/dev/null | grep -q "install ok installed"; then
  echo "[install-deps] apt-get install libpcre2-dev:arm64 (multiarch)"
  dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libpcre2-dev:arm64 >/dev/null
fi

# npm fetches the llama.cpp peer's source (node-llama-cpp); the machine image ships Node.js, Debian's is the fallback.
if ! command -v npm >/dev/null 2>&1; then
  echo "[install-deps] apt-get install npm"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if ! python3 -c "import numpy, gguf, sacrebleu, rouge_score, openai, pytest, lm_eval, tenacity, ray" 2>/dev/null; then
  echo "[install-deps] pip install ${PY_PKGS[*]}"
  python3 -m pip install -q "${PY_PKGS[@]}"
fi
echo "[install-deps] ok"
