#pragma once
// ggml's non-linear 4-bit formats: each 4-bit index picks one of 16 fixed levels (kIq4Levels), times a scale.
//   IQ4_NL: 32-element blocks, one f16 scale d: value = d * level[q]. Element j (0..15) is the low nibble of
//           qs[j], element j + 16 its high nibble (as Q4_0).
//   IQ4_XS: 256-element super-blocks of eight 32-element sub-blocks; f16 d and a 6-bit scale per sub-block
//           (low 4 bits: nibble ib % 2 of scales_l[ib / 2]; top 2 bits: bits 2ib..2ib+1 of scales_h), biased
//           by 32: value = (d * (ls - 32)) * level[q]. Sub-block ib's elements use qs[16ib .. 16ib + 15] as
//           IQ4_NL's block does.
#include <cstdint>

#include "formats/quant_search.h"

namespace pocketlm {

inline constexpr int QK4_NL = 32;
// The 16 levels (ggml's kvalues_iq4nl), ascending; a fact of the format.
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

struct block_iq4_nl {
  uint16_t d;              // scale (f16)
  uint8_t qs[QK4_NL / 2];  // level indices
};
struct block_iq4_xs {
  uint16_t d;           // super-scale (f16)
  uint16_t scales_h;    // top 2 bits of the 8 sub-block scales
  uint8_t scales_l[4];  // low 4 bits of the 8 sub-block scales
  uint8_t qs[256 / 2];  // level indices
};
static_assert(sizeof(block_iq4_nl) == 18 && alignof(block_iq4_nl) == 2);
static_assert(sizeof(block_iq4_xs) == 136 && alignof(block_iq4_xs) == 2);

// IQ4_XS: the biased 6-bit scale of sub-block ib (0..7), 0..63 (the value's factor is ls - 32).
inline int iq4_xs_scale(const block_iq4_xs& b, int ib) {
  return ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((b.scales_h >> (2 * ib)) & 3) << 4);
}

// Reference dequantizers (n a multiple of 32 / 256). Bit-identical to ggml / gguf-py.
void dequantize_row_iq4_nl(const block_iq4_nl* x, float* y, int64_t n);
void dequantize_row_iq4_xs(const block_iq4_xs* x, float* y, int64_t n);

// Encoders (iq4_encode.cpp), as the k-quants' (kquants.h): finite inputs, nullable per-column importance.
// The per-block scale search is an exact sweep over the level grid (scale_search.h fit_levels).
void encode_row_iq4_nl(const float* x, block_iq4_nl* y, int64_t n, const float* importance,
                       QuantSearch search = QuantSearch::fast);
void encode_row_iq4_xs(const float* x, block_iq4_xs* y, int64_t n, const float* importance,
                       QuantSearch search = QuantSearch::fast);

}  // namespace pocketlm
