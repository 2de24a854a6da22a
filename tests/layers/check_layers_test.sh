#!/usr/bin/env bash
# scripts/check-layers.py on small trees: a clean one passes, an upward include, a core layer including a
# JSON library and an unknown folder each fail with FILE:LINE and the rule broken; the repository passes.
# Usage: check_layers_test.sh REPO
set -euo pipefail
REPO="$1"
CHECK="$REPO/scripts/check-layers.py"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$TMP/ok/src/util" "$TMP/ok/src/model/arch" "$TMP/ok/src/eval"
printf '#pragma once\n#include <vector>\n' > "$TMP/ok/src/util/error.h"
printf '#include "util/error.h"\n#include "arch/forward.h"\n' > "$TMP/ok/src/model/model.cpp"
printf '#pragma once\n#include "../model.h"\n' > "$TMP/ok/src/model/arch/forward.h"
printf '#include "model/model.h"\n#include <nlohmann/json.hpp>\n' > "$TMP/ok/src/eval/results.cpp"
python3 "$CHECK" --root "$TMP/ok" > "$TMP/out" || fail "a clean tree was rejected: $(cat "$TMP/out")"

cp -r "$TMP/ok" "$TMP/up"
printf '#pragma once\n#include <vector>\n\n#include "runtime/session.h"\n' > "$TMP/up/src/util/error.h"
set +e; python3 "$CHECK" --root "$TMP/up" > "$TMP/out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || fail "an upward include exited $rc, not 1"
grep -q 'src/util/error.h:4: #include "runtime/session.h" points up: src/util/ may include only util, not src/runtime/' \
  "$TMP/out" || fail "no FILE:LINE and rule for the upward include: $(cat "$TMP/out")"

cp -r "$TMP/ok" "$TMP/json"
printf '#include "util/error.h"\n#include <nlohmann/json.hpp>\n' > "$TMP/json/src/model/model.cpp"
set +e; python3 "$CHECK" --root "$TMP/json" > "$TMP/out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] && grep -q 'src/model/model.cpp:2: #include <nlohmann/json.hpp>: src/model/ is in pocketlm_core' \
  "$TMP/out" || fail "a core layer including JSON passed: $(cat "$TMP/out")"

cp -r "$TMP/ok" "$TMP/new"
mkdir -p "$TMP/new/src/misc"; printf '#pragma once\n' > "$TMP/new/src/misc/x.h"
set +e; python3 "$CHECK" --root "$TMP/new" > "$TMP/out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] && grep -q 'src/misc/x.h:1: the folder src/misc/ is not a layer' "$TMP/out" \
  || fail "an unlisted folder passed: $(cat "$TMP/out")"

python3 "$CHECK" --root "$REPO" || fail "the repository breaks the layer order"
echo "check-layers: all cases behave"
