#!/usr/bin/env python3
"""gguf-py as the oracle of pocketlm's encoders (called by tests/quant/encode_gguf_py_test.cpp).

Usage: python3 scripts/gguf-py-encode-oracle.py IN.gguf OUT_DIR

IN.gguf (written by the test) holds one F32 tensor `src` (the rows) and tensors `enc.<type>` (pocketlm's encoding
of those rows). For every `enc.<type>` this writes OUT_DIR/<type>.deq.f32: gguf-py's numpy dequantization of our
blocks (read back through gguf-py's own GGUF reader). For every type gguf-py can quantize (its reference
round-to-nearest: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) it also writes OUT_DIR/<type>.ref.bin: gguf-py's encoding of
`src`. Exit status 0 on success; a Python traceback otherwise.
"""
import os
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf import quants

REFERENCE_QUANTIZERS = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0"}


def main() -> int:
    src_path, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    reader = GGUFReader(src_path)
    tensors = {t.name: t for t in reader.tensors}
    src = np.asarray(tensors["src"].data, dtype=np.float32)
    n_per_row = int(tensors["src"].shape[0])
    src = src.reshape(-1, n_per_row)
    for name, t in tensors.items():
        if not name.startswith("enc."):
            continue
        tname = name[4:]
        qtype = GGMLQuantizationType(int(t.tensor_type))
        deq = quants.dequantize(np.asarray(t.data), qtype).astype(np.float32)
        deq.tofile(os.path.join(out_dir, tname + ".deq.f32"))
        if tname in REFERENCE_QUANTIZERS:
            ref = quants.quantize(src, qtype)
            np.asarray(ref, dtype=np.uint8).tofile(os.path.join(out_dir, tname + ".ref.bin"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
