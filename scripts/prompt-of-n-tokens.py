#!/usr/bin/env python3
"""Writes a prompt of (nearly) exactly N tokens: a prefix of TEXT, its length searched until the model's
tokenizer (`pocketlm tokenize`) gives N tokens (N - 8 .. N). For peak-RSS measurements that fill a context.

Usage: prompt-of-n-tokens.py POCKETLM_CLI MODEL N OUT TEXT
"""
import subprocess
import sys

cli, model, n, out, text_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
text = open(text_path, encoding="utf-8").read()
while len(text) < 8 * n:
    text += text


def count(s):
    open(out, "w", encoding="utf-8").write(s)
    r = subprocess.run([cli, "tokenize", "-m", model, "-f", out, "--ids"], capture_output=True, text=True, check=True)
    return len(r.stdout.split())


lo, hi = 0, 8 * n  # count(text[:lo]) <= n < count(text[:hi])
while hi - lo > 1:
    mid = (lo + hi) // 2
    if count(text[:mid]) <= n:
        lo = mid
    else:
        hi = mid
got = count(text[:lo])
assert n - 8 <= got <= n, (got, n)
