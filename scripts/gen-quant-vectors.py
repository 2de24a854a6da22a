#!/usr/bin/env python3
"""Generate the checked-in test vectors for pocketlm's reference formats (tests/data/quant/).

The oracle is gguf-py (PyPI `gguf`, whose numpy code mirrors ggml's float32 arithmetic). Where gguf-py has no
routine (Q8_1 and Q8_K dequantization; Q8_1 and Q8_K activation quantization) this script carries a small
numpy port of ggml's reference rule, marked with oracle = 1 in the file header.

Usage:  python3 scripts/gen-quant-vectors.py [--out tests/data/quant]     (deterministic: fixed seed)

File formats (all little-endian):
  dequant_<type>.bin   b"PLQD", u32 version=1, u32 ggml type id, u32 oracle (0 gguf-py, 1 own numpy port),
                       u32 n_blocks, u32 block_size, u32 type_size,
                       n_blocks*type_size raw block bytes, then n_blocks*block_size expected float32.
  quantize_<type>.bin  b"PLQA", u32 version=1, u32 ggml type id, u32 oracle, u32 n_values, u32 n_bytes,
                       n_values float32 inputs, then n_bytes expected encoded row.
  vecdot_<type>.bin    b"PLQV", u32 version=1, u32 weight type id, u32 activation type id, u32 n (elements
                       per row), u32 n_rows, then per row: weight row bytes, activation row bytes; then n_rows
                       expected float32 dots. The expected dots come from this script's float32 port of the
                       accumulation order of ggml's generic (non-SIMD) vec_dot code, evaluated without FMA
                       contraction; its integer parts use gguf-py's dequantizers on blocks with unit scales.

Adversarial blocks in every dequant file: all-zero bytes, all-0xFF bytes (a NaN scale), max/min finite f16
scales (+-65504), subnormal f16 scales (0x0001, 0x03FF, 0x8001), -0.0 scale, Inf/-Inf/quiet-NaN/signalling-NaN
scales (outputs are then Inf or NaN per IEEE, e.g. Inf * 0 = NaN; the test compares NaN positions, not NaN
payloads), every quant byte equal (0x00, 0x55, 0x88, 0xAA, 0xFF) with unit scales; then random blocks.
"""
import argparse
import os
import struct
import sys

import numpy as np

try:
    from gguf import GGMLQuantizationType as T
    from gguf import quants as gq
except ImportError:  # pragma: no cover
    sys.exit("needs the PyPI package gguf (pip install gguf)")

VERSION = 1
QK_K = 256

# Block geometry (elements, bytes) and the byte offsets of each block's f16 scale fields. Q8_K's d is f32.
GEOMETRY = {
    T.F32: (1, 4, []), T.F16: (1, 2, []), T.BF16: (1, 2, []),
    T.Q4_0: (32, 18, [0]), T.Q4_1: (32, 20, [0, 2]), T.Q5_0: (32, 22, [0]), T.Q5_1: (32, 24, [0, 2]),
    T.Q8_0: (32, 34, [0]), T.Q8_1: (32, 36, [0, 2]),
    T.Q2_K: (256, 84, [80, 82]), T.Q3_K: (256, 110, [108]), T.Q4_K: (256, 144, [0, 2]),
    T.Q5_K: (256, 176, [0, 2]), T.Q6_K: (256, 210, [208]), T.Q8_K: (256, 292, []),
    T.IQ4_NL: (32, 18, [0]), T.IQ4_XS: (256, 136, [0]),
}
# Types added later draw from their own random stream, so that the earlier files stay byte-identical.
LATER_TYPES = (T.IQ4_NL, T.IQ4_XS)
NAMES = {T.F32: "f32", T.F16: "f16", T.BF16: "bf16", T.Q4_0: "q4_0", T.Q4_1: "q4_1", T.Q5_0: "q5_0",
         T.Q5_1: "q5_1", T.Q8_0: "q8_0", T.Q8_1: "q8_1", T.Q2_K: "q2_K", T.Q3_K: "q3_K", T.Q4_K: "q4_K",
         T.Q5_K: "q5_K", T.Q6_K: "q6_K", T.Q8_K: "q8_K", T.IQ4_NL: "iq4_nl", T.IQ4_XS: "iq4_xs"}

F16_ONE = 0x3C00
ADVERSARIAL_F16 = [0x7BFF, 0xFBFF, 0x0001, 0x03FF, 0x8001, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7D00]


def f16_bytes(bits: int) -> bytes:
    return struct.pack("<H", bits)


def random_f16_scales(rng, count: int) -> np.ndarray:
    """Finite, normal-range scales of both signs, magnitudes 1e-4 .. 10."""
    mag = 10.0 ** rng.uniform(-4, 1, size=count)
    sign = rng.choice([-1.0, 1.0], size=count)
    return (mag * sign).astype(np.float16).view(np.uint16)


def set_scales(block: bytearray, offsets, bits_list):
    for off, bits in zip(offsets, bits_list):
        block[off:off + 2] = f16_bytes(int(bits))


# ---- own numpy ports where gguf-py has none (ggml's reference rules, float32 throughout) ----------------

def dequant_q8_1(raw: np.ndarray) -> np.ndarray:
    blocks = raw.reshape(-1, 36)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 4:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def dequant_q8_K(raw: np.ndarray) -> np.ndarray:
    blocks = raw.reshape(-1, 292)
    d = blocks[:, 0:4].copy().view(np.float32)
    q = blocks[:, 4:4 + QK_K].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def quant_q8_1(x: np.ndarray) -> bytes:
    blocks = x.astype(np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = gq.np_roundf(blocks * inv).astype(np.int8)
    s = (q.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float16)
    out = np.concatenate([d.astype(np.float16).view(np.uint8), s.view(np.uint8), q.view(np.uint8)], axis=1)
    return out.tobytes()


def quant_q8_K(x: np.ndarray) -> bytes:
    blocks = x.astype(np.float32).reshape(-1, QK_K)
    out = bytearray()
    for b in blocks:
        i = int(np.argmax(np.abs(b)))  # first index of the largest magnitude, as ggml's strict '>' scan
        if np.abs(b[i]) == 0:
            out += struct.pack("<f", 0.0) + bytes(QK_K) + bytes(32)
            continue
        iscale = np.float32(-127.0) / b[i]
        q = np.minimum(np.rint(iscale * b), np.float32(127)).astype(np.int8)  # rint: halves to even
        bsums = q.astype(np.int16).reshape(16, 16).sum(axis=1).astype("<i2")
        d = np.float32(1.0) / iscale
        out += np.array([d], dtype="<f4").tobytes() + q.tobytes() + bsums.tobytes()
    return bytes(out)


# ---- dequantization vectors ----------------------------------------------------------------------------

def oracle_dequant(qtype, raw: np.ndarray):
    if qtype == T.Q8_1:
        return dequant_q8_1(raw), 1
    if qtype == T.Q8_K:
        return dequant_q8_K(raw), 1
    out = gq.dequantize(raw, qtype)
    return np.asarray(out, dtype=np.float32).reshape(-1), 0


def float_blocks(qtype, rng) -> bytes:
    if qtype in (T.F16, T.BF16):
        return np.arange(65536, dtype="<u2").tobytes()  # every 16-bit pattern
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38,
                        -3.4028235e38, 1.0, -1.0, 65504.0, 5.96e-8], dtype=np.float32)
    normal = (rng.standard_normal(498) * 10.0 ** rng.uniform(-8, 8, 498)).astype(np.float32)
    bits = rng.integers(0, 2**32, size=512, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([special, normal, bits]).astype("<f4").tobytes()


def quant_blocks(qtype, rng, n_random: int) -> bytes:
    _, size, scale_offs = GEOMETRY[qtype]
    blocks = []
    blocks.append(bytearray(size))             # all zero
    blocks.append(bytearray(b"\xff" * size))   # NaN scale(s), max quants / scale bits
    for fill in (0x00, 0x55, 0x88, 0xAA, 0xFF):  # all-same quants, unit scales
        b = bytearray([fill]) * size
        if qtype == T.Q8_K:
            b[0:4] = struct.pack("<f", 1.0)
        set_scales(b, scale_offs, [F16_ONE] * len(scale_offs))
        blocks.append(b)
    if qtype == T.Q8_K:
        for d in (3.4028235e38, -3.4028235e38, 1e-45, 1.17549435e-38, -0.0, float("inf"), float("-inf"),
                  float("nan"), 1e-3):
            b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
            b[0:4] = struct.pack("<f", d)
            blocks.append(b)
    for bits in ADVERSARIAL_F16:  # every scale field set to the adversarial value, random quants
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        set_scales(b, scale_offs, [bits] * len(scale_offs))
        blocks.append(b)
    if len(scale_offs) == 2:  # mixed: one field adversarial, the other ordinary
        for bits in ADVERSARIAL_F16:
            for which in (0, 1):
                b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
                vals = [F16_ONE, F16_ONE]
                vals[which] = bits
                set_scales(b, scale_offs, vals)
                blocks.append(b)
    for i in range(n_random):
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        if i % 8 != 7:  # every 8th block keeps fully random bytes (any scale pattern)
            if qtype == T.Q8_K:
                b[0:4] = struct.pack("<f", float(rng.standard_normal() * 10.0 ** rng.uniform(-6, 1)))
            set_scales(b, scale_offs, random_f16_scales(rng, len(scale_offs)))
        blocks.append(b)
    return b"".join(bytes(b) for b in blocks)


def write_dequant(out_dir: str, qtype, rng) -> int:
    block_size, type_size, _ = GEOMETRY[qtype]
    if qtype in (T.F32, T.F16, T.BF16):
        raw = float_blocks(qtype, rng)
    else:
        raw = quant_blocks(qtype, rng, n_random=200 if block_size == 32 else 40)
    arr = np.frombuffer(raw, dtype=np.uint8)
    n_blocks = len(raw) // type_size
    with np.errstate(invalid="ignore", over="ignore"):
        expected, oracle = oracle_dequant(qtype, arr.reshape(n_blocks, type_size) if block_size > 1 else arr)
    assert expected.size == n_blocks * block_size, (qtype, expected.size)
    path = os.path.join(out_dir, f"dequant_{NAMES[qtype]}.bin")
    with open(path, "wb") as f:
        f.write(b"PLQD" + struct.pack("<6I", VERSION, int(qtype), oracle, n_blocks, block_size, type_size))
        f.write(raw)
        f.write(expected.astype("<f4").tobytes())
    return os.path.getsize(path)


# ---- activation quantization vectors -------------------------------------------------------------------

def activation_inputs(rng, block: int, n_blocks: int) -> np.ndarray:
    rows = []
    rows.append(np.zeros(block, np.float32))                                  # all zero
    one = np.zeros(block, np.float32); one[block // 2] = -3.5; rows.append(one)  # single non-zero
    # Exact ties: the largest magnitude is 127 so that d = 1 and x * (1/d) = x; halves test the rounding.
    for sign in (1.0, -1.0):
        t = (rng.integers(-254, 255, block) / 2.0).astype(np.float32)
        t[0] = sign * 127.0
        rows.append(t)
    rows.append(np.full(block, 0.5, np.float32))                              # all equal
    big = rng.standard_normal(block).astype(np.float32) * np.float32(1e7)    # d overflows f16 to Inf
    rows.append(big)
    rows.append(rng.standard_normal(block).astype(np.float32) * np.float32(1e-30))  # tiny but normal d
    rows.append(np.array([1e-30 if i % 2 else 5.0 for i in range(block)], np.float32))  # wide range
    dup = rng.standard_normal(block).astype(np.float32); dup[3] = 9.0; dup[7] = -9.0; rows.append(dup)
    while len(rows) < n_blocks:
        scale = np.float32(10.0 ** rng.uniform(-6, 4))
        rows.append((rng.standard_normal(block) * scale).astype(np.float32))
    return np.concatenate(rows).astype(np.float32)


def float16_inputs(rng) -> np.ndarray:
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    mids = (halves[:-1] + halves[1:]) / 2.0  # exact in float32: F16 has 11 significant bits
    pick = rng.choice(mids.size, 2048, replace=False)
    m32 = mids[pick].astype(np.float32)
    near = np.concatenate([m32, np.nextafter(m32, np.float32(np.inf)), np.nextafter(m32, np.float32(0))])
    rnd = (rng.standard_normal(4096) * 10.0 ** rng.uniform(-9, 6, 4096)).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 65504.0, 65519.996, 65520.0, 1e9,
                        2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 2.0**-14, 1e-45], dtype=np.float32)
    x = np.concatenate([near, -near, rnd, special]).astype(np.float32)
    return x


def bfloat16_inputs(rng) -> np.ndarray:
    bits = rng.integers(0, 2**32, size=8192, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 2**16, size=2048, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000  # exact halves
    x = np.concatenate([bits, ties, ties + 1, ties - 1]).view(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, 1e-45], dtype=np.float32)
    x = np.concatenate([x, special])
    # Only the canonical quiet NaN: ggml and numpy agree on it (payload rules differ, see float.h).
    x[np.isnan(x)] = np.float32(np.nan)
    return x


def write_quantize(out_dir: str, qtype, rng) -> int:
    np.seterr(over="ignore")  # scales that overflow f16 to Inf are part of the vectors
    if qtype == T.Q8_0:
        x = activation_inputs(rng, 32, 160)
        encoded, oracle = np.asarray(gq.quantize(x.reshape(-1, 32), T.Q8_0)).tobytes(), 0
    elif qtype == T.Q8_1:
        x = activation_inputs(rng, 32, 160)
        encoded, oracle = quant_q8_1(x), 1
    elif qtype == T.Q8_K:
        x = activation_inputs(rng, QK_K, 24)
        encoded, oracle = quant_q8_K(x), 1
    elif qtype == T.F16:
        x = float16_inputs(rng)
        with np.errstate(over="ignore"):
            encoded, oracle = x.astype(np.float16).astype("<f2").tobytes(), 0
    elif qtype == T.BF16:
        x = bfloat16_inputs(rng)
        encoded, oracle = np.asarray(gq.quantize(x, T.BF16)).tobytes(), 0
    else:
        raise ValueError(qtype)
    path = os.path.join(out_dir, f"quantize_{NAMES[qtype]}.bin")
    with open(path, "wb") as f:
        f.write(b"PLQA" + struct.pack("<5I", VERSION, int(qtype), oracle, x.size, len(encoded)))
        f.write(x.astype("<f4").tobytes())
        f.write(encoded)
    return os.path.getsize(path)


# ---- vec_dot vectors ----------------------------------------------------------------------------------

ACT_TYPE = {T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16, T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0,
            T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1, T.Q2_K: T.Q8_K, T.Q3_K: T.Q8_K, T.Q4_K: T.Q8_K, T.Q5_K: T.Q8_K,
            T.Q6_K: T.Q8_K}
F32 = np.float32


def encode_activations(qtype, x: np.ndarray) -> bytes:
    if qtype == T.F32:
        return x.astype("<f4").tobytes()
    if qtype == T.F16:
        return x.astype(np.float16).tobytes()
    if qtype == T.BF16:
        return np.asarray(gq.quantize(x, T.BF16)).tobytes()
    if qtype == T.Q8_0:
        return np.asarray(gq.quantize(x.reshape(-1, 32), T.Q8_0)).tobytes()
    if qtype == T.Q8_1:
        return quant_q8_1(x)
    return quant_q8_K(x)


def weight_ints(wtype, raw: np.ndarray, scale_bits, min_bits) -> np.ndarray:
    """Per-element integers of a weight row: gguf-py's dequantization after overwriting every block's f16
    scale field with scale_bits and min field (if any) with min_bits. Unit scale and zero min give scale*q
    (or q - offset); zero scale and unit min give -min."""
    _, size, offs = GEOMETRY[wtype]
    blocks = raw.reshape(-1, size).copy()
    for k, off in enumerate(offs):
        bits = scale_bits if k == 0 else min_bits
        blocks[:, off:off + 2] = np.frombuffer(f16_bytes(bits), dtype=np.uint8)
    vals = np.asarray(gq.dequantize(blocks, wtype), dtype=np.float64).reshape(-1)
    ints = np.rint(vals).astype(np.int64)
    assert np.array_equal(ints, vals), "unit-scale dequantization must give integers"
    return ints


def f16_at(buf: np.ndarray, off: int) -> np.float32:
    return F32(buf[off:off + 2].copy().view(np.float16)[0])


def expected_dot(wtype, w: np.ndarray, a: np.ndarray, n: int) -> np.float32:
    atype = ACT_TYPE[wtype]
    if wtype in (T.F32, T.F16, T.BF16):  # float products, double accumulation
        if wtype == T.F32:
            wf, af = w.view("<f4"), a.view("<f4")
        elif wtype == T.F16:
            wf, af = w.view("<f2").astype(F32), a.view("<f2").astype(F32)
        else:
            wf, af = gq.dequantize(w, T.BF16).reshape(-1), gq.dequantize(a, T.BF16).reshape(-1)
        total = 0.0
        for p in (wf * af).astype(F32):
            total += float(p)
        return F32(total)
    _, wsize, offs = GEOMETRY[wtype]
    _, asize, _ = GEOMETRY[atype]
    nb_w = n // GEOMETRY[wtype][0]
    wb = w.reshape(nb_w, wsize)
    ab = a.reshape(-1, asize)
    one, zero = F16_ONE, 0x0000
    scaled = weight_ints(wtype, w, one, zero)  # scale * q (K-quants), q - offset or q (32-blocks)
    if atype in (T.Q8_0, T.Q8_1):
        aq = ab[:, asize - 32:].copy().view(np.int8).astype(np.int64).reshape(-1)
    else:
        aq = ab[:, 4:4 + QK_K].copy().view(np.int8).astype(np.int64).reshape(-1)
    prod = scaled * aq
    total = F32(0)
    if atype in (T.Q8_0, T.Q8_1):
        isums = prod.reshape(-1, 32).sum(axis=1)
        for b in range(nb_w):
            dw, dx, isum = f16_at(wb[b], 0), f16_at(ab[b], 0), F32(int(isums[b]))
            if wtype == T.Q4_0:
                total = total + (isum * dw) * dx
            elif wtype == T.Q5_0:
                total = total + (dw * dx) * isum
            elif wtype == T.Q8_0:
                total = total + isum * (dw * dx)
            else:  # Q4_1, Q5_1 with Q8_1
                mw, sx = f16_at(wb[b], 2), f16_at(ab[b], 2)
                total = total + ((dw * dx) * isum + mw * sx)
        return total
    dx_all = ab[:, 0:4].copy().view("<f4").reshape(-1)
    bsums = ab[:, 4 + QK_K:].copy().view("<i2").astype(np.int64)
    mins = None
    if wtype in (T.Q2_K, T.Q4_K, T.Q5_K):
        mins = -weight_ints(wtype, w, zero, one).reshape(nb_w, 16, 16)[:, :, 0]  # min of each group of 16
    lanes_acc = [F32(0)] * 8
    for b in range(nb_w):
        dx = F32(dx_all[b])
        p = prod[b * QK_K:(b + 1) * QK_K]
        if wtype == T.Q2_K:
            isum = F32(int(p.sum()))
            isum_mins = F32(int((bsums[b] * mins[b]).sum()))
            dall, dmin = dx * f16_at(wb[b], offs[0]), dx * f16_at(wb[b], offs[1])
            total = total + (dall * isum - dmin * isum_mins)
            continue
        lanes = p.reshape(-1, 8).sum(axis=0)
        d = f16_at(wb[b], offs[0]) * dx
        lanes_acc = [lanes_acc[l] + d * F32(int(lanes[l])) for l in range(8)]
        if wtype in (T.Q4_K, T.Q5_K):
            isum_mins = F32(int((bsums[b] * mins[b]).sum()))
            total = total - (f16_at(wb[b], offs[1]) * dx) * isum_mins
    for l in range(8):
        total = total + lanes_acc[l]
    return total


def write_vecdot(out_dir: str, wtype, rng) -> int:
    atype = ACT_TYPE[wtype]
    block_size, type_size, offs = GEOMETRY[wtype]
    n = 1024 if block_size == QK_K else 256
    n_rows = 8
    w_rows, a_rows, expected = [], [], []
    for r in range(n_rows):
        if block_size == 1:
            wf = (rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
            w = np.frombuffer(encode_activations(wtype, wf), dtype=np.uint8)
        else:
            raw = bytearray(rng.integers(0, 256, n // block_size * type_size, dtype=np.uint8).tobytes())
            for b in range(n // block_size):
                set_scales(memoryview(raw)[b * type_size:(b + 1) * type_size], offs, random_f16_scales(rng, len(offs)))
            w = np.frombuffer(bytes(raw), dtype=np.uint8)
        x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 2)).astype(np.float32)
        if r == 1:
            x[7] *= 100  # an outlier
        a = np.frombuffer(encode_activations(atype, x), dtype=np.uint8)
        w_rows.append(w.tobytes())
        a_rows.append(a.tobytes())
        expected.append(expected_dot(wtype, w, a, n))
    path = os.path.join(out_dir, f"vecdot_{NAMES[wtype]}.bin")
    with open(path, "wb") as f:
        f.write(b"PLQV" + struct.pack("<5I", VERSION, int(wtype), int(atype), n, n_rows))
        for w, a in zip(w_rows, a_rows):
            f.write(w + a)
        f.write(np.array(expected, dtype="<f4").tobytes())
    return os.path.getsize(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "quant"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    total = 0
    for qtype in GEOMETRY:
        if qtype not in LATER_TYPES:
            total += write_dequant(args.out, qtype, rng)
    for qtype in (T.Q8_0, T.Q8_1, T.Q8_K, T.F16, T.BF16):
        total += write_quantize(args.out, qtype, rng)
    for wtype in ACT_TYPE:
        total += write_vecdot(args.out, wtype, rng)
    later = np.random.default_rng(20251125)
    for qtype in LATER_TYPES:
        total += write_dequant(args.out, qtype, later)
    print(f"wrote {len(GEOMETRY) + 5 + len(ACT_TYPE)} files, {total} bytes, to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
