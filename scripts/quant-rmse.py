#!/usr/bin/env python3
"""Per-tensor weighted RMSE of two quantizations of one base model, dequantized by gguf-py (llama.cpp's own
numpy dequantizers), so neither tool grades itself.

    quant-rmse.py BASE.gguf A.gguf B.gguf [--imatrix IMATRIX.gguf] [--csv OUT.csv]

For every tensor quantized in A or B (type different from BASE's): RMSE of A's and B's reconstruction against
BASE, weighted per input column by the imatrix importance (in_sum2 / count) when the tensor has an entry, else
unweighted: sqrt(sum_ij w_j (x_ij - q_ij)^2 / (rows * sum_j w_j)). Prints one summary line, the ratio A/B:
"median (worst), N of M tensors worse"; --csv writes every tensor's figures.
"""
import argparse
import csv
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


def values(t):
    cols = int(t.shape[0])
    return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(-1, cols)


def importance(path):
    if not path:
        return {}
    ts = tensors(path)
    out = {}
    for name, t in ts.items():
        if name.endswith(".in_sum2"):
            base = name[: -len(".in_sum2")]
            counts = np.asarray(ts[base + ".counts"].data, dtype=np.float64).reshape(-1)
            sums = np.asarray(t.data, dtype=np.float64).reshape(len(counts), -1)
            if len(counts) == 1 and counts[0] > 0:
                out[base] = sums[0] / counts[0]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--imatrix")
    ap.add_argument("--csv")
    args = ap.parse_args()
    base, a, b = tensors(args.base), tensors(args.a), tensors(args.b)
    imp = importance(args.imatrix)
    rows = []
    for name, tb in base.items():
        ta, tq = a.get(name), b.get(name)
        if ta is None or tq is None:
            sys.exit(f"quant-rmse: tensor {name} is missing from {args.a if ta is None else args.b}")
        if ta.tensor_type == tb.tensor_type and tq.tensor_type == tb.tensor_type:
            continue
        x = values(tb)
        w = imp.get(name)
        if w is None or len(w) != x.shape[1]:
            w = np.ones(x.shape[1])
        def wrmse(t):
            d = values(t) - x
            return float(np.sqrt((d * d * w).sum() / (x.shape[0] * w.sum())))
        ra, rb = wrmse(ta), wrmse(tq)
        ratio = 1.0 if ra == rb else (ra / rb if rb > 0 else float("inf"))  # both exact (e.g. q8_0 of q8_0 values): 1
        rows.append((name, ta.tensor_type.name, tq.tensor_type.name, ra, rb, ratio))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["tensor", "type_a", "type_b", "wrmse_a", "wrmse_b", "ratio"])
            wr.writerows(rows)
    ratios = np.array([r[5] for r in rows])
    worse = int((ratios > 1 + 1e-9).sum())
    print(f"{np.median(ratios):.3f} ({ratios.max():.3f}), {worse} of {len(rows)}")


if __name__ == "__main__":
    main()
