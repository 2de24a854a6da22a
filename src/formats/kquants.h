#pragma once
// ggml's k-quant super-block formats (256 elements): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and Q8_K (activations).
// A super-block splits into sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K) elements, each with a
// small integer scale (and min) relative to the f16 super-scales d (and dmin). Element order:
//   Q2_K/Q3_K: element 128h + 32s + l (h 0..1, s 0..3, l 0..31) is bits 2s..2s+1 of qs[32h + l];
//              Q3_K's third bit is bit 4h + s of hmask[l] (a set bit means +0, a clear bit -4).
//   Q4_K/Q5_K: element 64p + l (p 0..3, l 0..31) is the low nibble of qs[32p + l], element 64p + 32 + l its
//              high nibble; Q5_K's fifth bit of element 32s + l is bit s of qh[l].
//   Q6_K:      element 128h + 32k + l takes its low 4 bits from ql[64h + 32(k & 1) + l] (low nibble for
//              k < 2, high for k >= 2) and its top 2 bits from bits 2k..2k+1 of qh[32h + l]; minus 32.
// Values: Q2_K: d*sc*q - dmin*m    Q3_K: d*(sc-32)*q    Q4_K/Q5_K: d*sc*q - dmin*m    Q6_K: d*sc*q
// (products evaluated left to right: (d*sc) then times q).
#include <cstdint>

#include "formats/quant_search.h"

namespace pocketlm {

inline constexpr int QK_K = 256;
inline constexpr int K_SCALE_SIZE = 12;

struct block_q2_K {
  uint8_t scales[QK_K / 16];  // per 16 elements: low nibble scale, high nibble min
  uint8_t qs[QK_K / 4];       // 2-bit quants
  uint16_t d;                 // super-scale of the scales (f16)
  uint16_t dmin;              // super-scale of the mins (f16)
};
struct block_q3_K {
  uint8_t hmask[QK_K / 8];  // third bits
  uint8_t qs[QK_K / 4];     // low 2 bits
  uint8_t scales[12];       // 16 six-bit scales, biased by 32 (see q3_K_scales)
  uint16_t d;               // super-scale (f16)
};
struct block_q4_K {
  uint16_t d;                    // super-scale of the scales (f16)
  uint16_t dmin;                 // super-scale of the mins (f16)
  uint8_t scales[K_SCALE_SIZE];  // 8 six-bit scales and 8 six-bit mins (see k_scale_min)
  uint8_t qs[QK_K / 2];          // 4-bit quants
};
struct block_q5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];  // fifth bits
  uint8_t qs[QK_K / 2];  // low 4 bits
};
struct block_q6_K {
  uint8_t ql[QK_K / 2];      // low 4 bits
  uint8_t qh[QK_K / 4];      // top 2 bits
  int8_t scales[QK_K / 16];  // signed 8-bit scale per 16 elements
  uint16_t d;                // super-scale (f16)
};
struct block_q8_K {
  float d;  // scale (f32)
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];  // sum of qs per 16 elements
};

// Sizes must equal the type table's type_size (ggml_type.cpp).
static_assert(sizeof(block_q2_K) == 84 && alignof(block_q2_K) == 2);
static_assert(sizeof(block_q3_K) == 110 && alignof(block_q3_K) == 2);
static_assert(sizeof(block_q4_K) == 144 && alignof(block_q4_K) == 2);
static_assert(sizeof(block_q5_K) == 176 && alignof(block_q5_K) == 2);
static_assert(sizeof(block_q6_K) == 210 && alignof(block_q6_K) == 2);
static_assert(sizeof(block_q8_K) == 292 && alignof(block_q8_K) == 4);

// Q4_K/Q5_K: the 6-bit scale and min of sub-block j (0..7). Bytes 0..3 hold scales 0..3 in their low 6 bits,
// bytes 4..7 mins 0..3; scales/mins 4..7 take their low 4 bits from the nibbles of bytes 8..11 and their top
// 2 bits from the spare top bits of bytes 0..3 (scales) and 4..7 (mins).
inline void k_scale_min(const uint8_t scales[K_SCALE_SIZE], int j, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = static_cast<uint8_t>(scales[j] & 63);
    m = static_cast<uint8_t>(scales[j + 4] & 63);
  } else {
    sc = static_cast<uint8_t>((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Q3_K: the 16 signed scales (six-bit value minus 32). Scale j takes its low 4 bits from byte j (j < 8,
// low nibble) or byte j - 8 (high nibble), and its top 2 bits from bits 2(j/4)..2(j/4)+1 of byte 8 + j%4.
inline void q3_K_scales(const uint8_t packed[12], int8_t sc[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (packed[j] & 0x0F) : (packed[j - 8] >> 4);
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    sc[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

// The signed integer quants of one super-block, in element order (layouts above).
void unpack_q2_K(const block_q2_K& b, int8_t q[QK_K]);  // 0..3
void unpack_q3_K(const block_q3_K& b, int8_t q[QK_K]);  // -4..3
void unpack_q4_K(const block_q4_K& b, int8_t q[QK_K]);  // 0..15
void unpack_q5_K(const block_q5_K& b, int8_t q[QK_K]);  // 0..31
void unpack_q6_K(const block_q6_K& b, int8_t q[QK_K]);  // -32..31

// Reference dequantizers: n is a multiple of 256. Bit-identical to ggml / gguf-py (see docs/formats.md).
void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t n);
void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t n);
void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t n);
void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t n);

// Activation quantizer with the rounding of ggml's reference: m = the value of largest magnitude (first one
// on ties), iscale = -127/m, q = min(127, round-half-even(iscale * x)), d = 1/iscale, bsums = sums of 16.
// An all-zero block gets d = 0, q = 0, bsums = 0. Defined for finite inputs.
void quantize_row_q8_K(const float* x, block_q8_K* y, int64_t n);

// Weight encoders (kquants_encode.cpp): one row of n values (a multiple of 256), finite inputs (callers check:
// quantize.h); `importance` (nullable) holds n per-column weights. Two levels of search: each sub-block's
// scale (and min) is a weighted least-squares fit (scale_search.h); then the super-block's f16 scale(s) are
// chosen among candidates by the super-block's whole weighted error, with each sub-block's integer scale
// (and min) tried at both neighbouring integers and every quant re-rounded against the stored values.
void encode_row_q2_K(const float* x, block_q2_K* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q3_K(const float* x, block_q3_K* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q4_K(const float* x, block_q4_K* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q5_K(const float* x, block_q5_K* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q6_K(const float* x, block_q6_K* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);

// The inverse of unpack_*: stores the integer quants of one super-block (element order, the ranges of unpack_*)
// into its qs / qh / hmask, leaving the scales as they are. The encoders pack through these; GPTQ
// (quant/methods) re-packs quants it chose on a block's existing scales.
void pack_quants_q2_K(const int8_t L[QK_K], block_q2_K& y);  // 0..3
void pack_quants_q3_K(const int8_t L[QK_K], block_q3_K& y);  // -4..3
void pack_quants_q4_K(const int8_t L[QK_K], block_q4_K& y);  // 0..15
void pack_quants_q5_K(const int8_t L[QK_K], block_q5_K& y);  // 0..31
void pack_quants_q6_K(const int8_t L[QK_K], block_q6_K& y);  // -32..31

}  // namespace pocketlm
