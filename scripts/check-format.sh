#!/usr/bin/env bash
# Fails when a C/C++ file tracked by git differs from what clang-format-14 makes of it (.clang-format: Google
# style, 120 columns). Prints each such file and the command that fixes it.
#   scripts/check-format.sh            check every tracked *.cpp, *.h, *.c
#   scripts/check-format.sh FILE...    check only these
set -euo pipefail
cd "$(dirname "$0")/.."
CF="${CLANG_FORMAT:-clang-format-14}"
command -v "$CF" >/dev/null || { echo "check-format: $CF not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.c'); fi
bad=()
for f in "${files[@]}"; do
  "$CF" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'not formatted: %s\n' "${bad[@]}" >&2
  echo "fix: $CF -i ${bad[*]}" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
