#!/usr/bin/env python3
"""Fails when an #include points up the layers (docs/architecture.md, DESIGN.md).

Usage: scripts/check-layers.py [--root REPO]     (default: the repository holding this script)

Every folder under src/ is one layer; a file may include only its own layer and the layers before it:

    util → formats → gguf → kernels → tokenizer → model → runtime → api    (pocketlm_core)
         → quant → prune → eval → bench → plan → tune → server             (the pipelines)

(api/ implements the public C API, include/pocketlm/pocketlm.h, over the runtime.)

Then the clients (tools/, examples/, include/pocketlm/ implementations) may include any of them, and nothing
under src/ may include a client. The core layers (util … api) also may not include a YAML, JSON, HTTP or
CLI library: an app links pocketlm_core without them. A folder that is not in the list is an error too, so a
new layer is placed on purpose. Each problem is printed as FILE:LINE: the include, and the rule it breaks;
the exit status is 1 when there is one.
"""
import argparse
import pathlib
import re
import sys

# Lowest first. A layer may include itself and any layer before it.
LAYERS = ["util", "formats", "gguf", "kernels", "tokenizer", "model", "runtime", "api",
          "quant", "prune", "eval", "bench", "plan", "tune", "server"]
CORE = LAYERS[:LAYERS.index("api") + 1]
# Headers of the libraries pocketlm_core must not depend on (angle-bracket includes, by prefix).
NOT_IN_CORE = ("nlohmann/", "yaml-cpp/", "CLI/", "httplib.h")
SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".c"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def layer_of(root: pathlib.Path, path: pathlib.Path):
    """The src/ folder a file lies in, or None outside src/."""
    rel = path.relative_to(root)
    return rel.parts[1] if len(rel.parts) > 2 and rel.parts[0] == "src" else None


def target_layer(root: pathlib.Path, src: pathlib.Path, including: pathlib.Path, name: str):
    """The layer a quoted include resolves to: "layer/..." from src/, else relative to the including file."""
    first = name.split("/", 1)[0]
    if first == "pocketlm" and (root / "include" / name).is_file():
        return "api"  # the public headers (include/pocketlm/) belong to the api layer
    if (src / name).is_file() or first in LAYERS:
        return first
    rel = (including.parent / name).resolve()
    try:
        parts = rel.relative_to(src.resolve()).parts
    except ValueError:
        return "<outside src/: " + name + ">"
    return parts[0] if len(parts) > 1 else "<src/ itself>"


def check(root: pathlib.Path) -> list:
    src = root / "src"
    problems = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
            continue
        here = layer_of(root, path)
        rel = path.relative_to(root)
        if here not in LAYERS:
            problems.append(f"{rel}:1: the folder src/{here}/ is not a layer: add it to LAYERS in "
                            "scripts/check-layers.py at its place in the order")
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            bracket, name = m.groups()
            if bracket == "<":
                if here in CORE and name.startswith(NOT_IN_CORE):
                    problems.append(f"{rel}:{n}: #include <{name}>: src/{here}/ is in pocketlm_core, which "
                                    "links no YAML, JSON, HTTP or CLI library")
                continue
            there = target_layer(root, src, path, name)
            if there not in LAYERS:
                problems.append(f'{rel}:{n}: #include "{name}": src/{here}/ may include only src/ layers '
                                f"({there} is not one)")
            elif LAYERS.index(there) > LAYERS.index(here):
                below = " → ".join(LAYERS[:LAYERS.index(here) + 1])
                problems.append(f'{rel}:{n}: #include "{name}" points up: src/{here}/ may include only '
                                f"{below}, not src/{there}/")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    root = args.root.resolve()
    if not (root / "src").is_dir():
        print(f"check-layers: {root}/src: no such folder", file=sys.stderr)
        return 2
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} include(s) break the layer order", file=sys.stderr)
        return 1
    print(f"check-layers: src/ follows {' → '.join(LAYERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
