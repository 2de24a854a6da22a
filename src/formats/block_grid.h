#pragma once
// The grid of one encoded block: for a block of a uniform-grid format (every legacy type, every k-quant, the
// pocketlm-only Q4_0 group sizes) each element j can take the values d[j] * L + m[j], L an integer in
// [lo, hi], with d[j], m[j] what the block's stored scales (and mins) decode to, in the decoder's float
// arithmetic. An encoder picks the scales; a method that wants to choose the integers itself (GPTQ's error
// feedback, quant/methods/gptq.h) reads the grid, rounds each value onto it, and packs its integers back
// with the scales unchanged, so the block stays a standard block of its type.
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm {

inline constexpr int kMaxGridBlock = 256;

struct BlockGrid {
  int n = 0;           // elements in the block (the type's block size)
  int lo = 0, hi = 0;  // integer range
  float d[kMaxGridBlock];
  float m[kMaxGridBlock];

  // The integer nearest to v on element j's grid, and the value it decodes to (exactly the decoder's).
  int nearest(int j, float v) const;
  float value(int j, int L) const { return d[j] * static_cast<float>(L) + m[j]; }
};

// Whether block_grid / pack_block_quants handle the type (uniform grids: not IQ4_NL/IQ4_XS, not floats).
bool has_block_grid(GgmlType type);

// The grid of the encoded block at `block` (one block of `type`, has_block_grid(type)).
void block_grid(GgmlType type, const void* block, BlockGrid& g);

// Stores the integers L (g.n of them, in [g.lo, g.hi]) as the block's quants; scales untouched.
void pack_block_quants(GgmlType type, void* block, const int* L);

}  // namespace pocketlm
