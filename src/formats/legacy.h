#pragma once
// The 32-element block formats of ggml ("legacy" quants): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
// Scales are IEEE half floats stored as raw uint16_t (see float.h). Element order inside a block: the low
// nibbles of qs[0..15] are elements 0..15, the high nibbles elements 16..31. The 5-bit formats keep the
// fifth bit of element j in bit j of the little-endian 32-bit word qh. Value of element j:
//   Q4_0: d * (q - 8)      Q4_1: d * q + m      Q5_0: d * (q - 16)      Q5_1: d * q + m      Q8_0/Q8_1: d * q
// Q8_1 is only an activation format: s = d * sum(q), rounded to half, lets Q4_1/Q5_1 dots add the mins.
// pocketlm-only group sizes (ggml_type.h): Q4_0_G64 / Q4_0_G128 are Q4_0 with one scale per 64 / 128 values.
#include <cstdint>
#include <cstring>  // memcpy

#include "formats/quant_search.h"

namespace pocketlm {

inline constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;

struct block_q4_0 {
  uint16_t d;  // scale (f16)
  uint8_t qs[QK4_0 / 2];
};
struct block_q4_1 {
  uint16_t d;  // scale (f16)
  uint16_t m;  // min (f16)
  uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {
  uint16_t d;     // scale (f16)
  uint8_t qh[4];  // fifth bits, little-endian uint32
  uint8_t qs[QK5_0 / 2];
};
struct block_q5_1 {
  uint16_t d;     // scale (f16)
  uint16_t m;     // min (f16)
  uint8_t qh[4];  // fifth bits, little-endian uint32
  uint8_t qs[QK5_1 / 2];
};
struct block_q8_0 {
  uint16_t d;  // scale (f16)
  int8_t qs[QK8_0];
};
struct block_q8_1 {
  uint16_t d;  // scale (f16)
  uint16_t s;  // d * sum(qs) (f16)
  int8_t qs[QK8_1];
};

// Sizes must equal the type table's type_size (ggml_type.cpp); the format is the file format.
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2);
static_assert(sizeof(block_q4_1) == 20 && alignof(block_q4_1) == 2);
static_assert(sizeof(block_q5_0) == 22 && alignof(block_q5_0) == 2);
static_assert(sizeof(block_q5_1) == 24 && alignof(block_q5_1) == 2);
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2);
static_assert(sizeof(block_q8_1) == 36 && alignof(block_q8_1) == 2);

// pocketlm-only (not ggml types; ids 1064 / 1128, see ggml_type.h): Q4_0's element rule, d * (q - 8), with
// one f16 scale per G = 64 or 128 values. The quants are Q4_0's packing applied per 32-element part: part p
// (elements 32p .. 32p + 31) is qs[16p .. 16p + 15], packed exactly as a block_q4_0's qs. So a G-block is
// G / 32 q4_0 blocks that share one d (and decodes to exactly what those q4_0 blocks would).
inline constexpr int QK4_0_G64 = 64, QK4_0_G128 = 128;
template <int G>
struct block_q4_0_g {
  static_assert(G % 32 == 0);
  static constexpr int kParts = G / 32;  // 32-element parts, each packed as a q4_0 block's qs
  uint16_t d;                            // scale (f16), shared by every part
  uint8_t qs[G / 2];                     // part p: qs + 16 * p
};
using block_q4_0_g64 = block_q4_0_g<QK4_0_G64>;
using block_q4_0_g128 = block_q4_0_g<QK4_0_G128>;
static_assert(sizeof(block_q4_0_g64) == 34 && alignof(block_q4_0_g64) == 2);    // 4.25 bits/weight
static_assert(sizeof(block_q4_0_g128) == 66 && alignof(block_q4_0_g128) == 2);  // 4.125 bits/weight

// Element access, the one statement of the packing. Q4_0/Q4_1: element j (0..15) is the low nibble of
// qs[j] and element j + 16 its high nibble. Q5_0/Q5_1 add bit j of qh as the fifth bit of element j.
inline int q4_low(const uint8_t qs[16], int j) { return qs[j] & 0x0F; }  // element j
inline int q4_high(const uint8_t qs[16], int j) { return qs[j] >> 4; }   // element j + 16
inline uint32_t q5_high_bits(const uint8_t qh[4]) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));  // little-endian hosts only (as GGUF itself)
  return bits;
}
inline int q5_low(const uint8_t qs[16], uint32_t qh, int j) {  // element j
  return q4_low(qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
}
inline int q5_high(const uint8_t qs[16], uint32_t qh, int j) {  // element j + 16
  return q4_high(qs, j) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
}

// Reference dequantizers: n is a multiple of 32. Bit-identical to ggml / gguf-py (see docs/formats.md).
void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t n);
void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t n);
void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t n);
void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n);
void dequantize_row_q8_1(const block_q8_1* x, float* y, int64_t n);
// The pocketlm-only group sizes (n a multiple of G); instantiated for G = 64 and 128.
template <int G>
void dequantize_row_q4_0_g(const block_q4_0_g<G>* x, float* y, int64_t n);

// Activation quantizers with the rounding of ggml's reference versions: d = amax / 127 (stored as f16),
// q = round-half-away-from-zero(x * (1/d)) using the float32 d. Q8_1 adds s = f16(d * sum(q)).
// Defined for finite inputs; non-finite inputs give unspecified (but defined) bytes.
// Q8Rounding::X86Simd instead gives llama.cpp's x86 SIMD arithmetic: q = round-half-to-even(x * (127/amax))
// (the oracle of our SIMD activation quantizers, kernels/ref/activation_ref.h).
enum class Q8Rounding { Generic, X86Simd };
void quantize_row_q8_0(const float* x, block_q8_0* y, int64_t n, Q8Rounding rounding = Q8Rounding::Generic);
void quantize_row_q8_1(const float* x, block_q8_1* y, int64_t n, Q8Rounding rounding = Q8Rounding::Generic);

// Weight encoders (legacy_encode.cpp): one row of n values (a multiple of 32), finite inputs (callers check:
// quantize.h). `importance` (nullable) holds n per-column weights, e.g. an imatrix row. Each block's scale
// (and min) is a weighted least-squares search (scale_search.h, weights in encode_weights.h); the scale is
// then stored in f16, its f16 neighbours are tried, and every quant re-rounded against the stored values.
// Q8_0 is ggml's deterministic round-to-nearest (d = amax / 127), byte-identical to ggml; it ignores importance.
// QuantSearch::nearest skips the search: ggml's reference rounding (the block's extremes give the scale and min),
// byte-identical to llama-quantize without an imatrix; importance is ignored then.
// (Except where ggml would store an infinite scale, |x| > ~8.3e6: there the largest finite f16 is stored.)
void encode_row_q4_0(const float* x, block_q4_0* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q4_1(const float* x, block_q4_1* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q5_0(const float* x, block_q5_0* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q5_1(const float* x, block_q5_1* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
void encode_row_q8_0(const float* x, block_q8_0* y, int64_t n, const float* importance,
                     QuantSearch search = QuantSearch::fast);
// The pocketlm-only group sizes: Q4_0's search over the G values sharing a scale (n a multiple of G);
// instantiated for G = 64 and 128.
template <int G>
void encode_row_q4_0_g(const float* x, block_q4_0_g<G>* y, int64_t n, const float* importance,
                       QuantSearch search = QuantSearch::fast);

// The quants of one block (element order; Q4_0 -8..7, Q5_0 -16..15, Q4_1 0..15, Q5_1 0..31, Q8_0 -127..127)
// packed into its qs / qh, the scale (and min) left as they are: the encoders pack through these; GPTQ
// (quant/methods) re-packs quants it chose on a block's existing scale.
void pack_quants_q4_0(const int L[32], block_q4_0& y);
void pack_quants_q4_1(const int L[32], block_q4_1& y);
void pack_quants_q5_0(const int L[32], block_q5_0& y);
void pack_quants_q5_1(const int L[32], block_q5_1& y);
void pack_quants_q8_0(const int L[32], block_q8_0& y);
template <int G>
void pack_quants_q4_0_g(const int L[G], block_q4_0_g<G>& y);
extern template void pack_quants_q4_0_g<QK4_0_G64>(const int*, block_q4_0_g64&);
extern template void pack_quants_q4_0_g<QK4_0_G128>(const int*, block_q4_0_g128&);

extern template void dequantize_row_q4_0_g<QK4_0_G64>(const block_q4_0_g64*, float*, int64_t);
extern template void dequantize_row_q4_0_g<QK4_0_G128>(const block_q4_0_g128*, float*, int64_t);
extern template void encode_row_q4_0_g<QK4_0_G64>(const float*, block_q4_0_g64*, int64_t, const float*, QuantSearch);
extern template void encode_row_q4_0_g<QK4_0_G128>(const float*, block_q4_0_g128*, int64_t, const float*, QuantSearch);

}  // namespace pocketlm
