#pragma once
// 16-bit float formats: IEEE binary16 (ggml's F16) and bfloat16 (BF16), and their conversions to and from
// float32. Conversions are exact IEEE: widening is lossless; narrowing rounds to nearest, ties to even,
// keeps subnormals, overflows to infinity. NaN narrows to a quiet NaN of the same sign (F16: 0x7E00, payload
// dropped; BF16: the top payload bits kept with the quiet bit forced), as ggml does.
#include <bit>
#include <cstdint>

namespace pocketlm {

// Branch-free so that loops over rows vectorize: every case is computed and the right one selected.
inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7FFFu;                                // exponent and mantissa
  uint32_t normal = (em << 13) + (112u << 23);                    // re-bias the exponent by 127 - 15
  normal += static_cast<uint32_t>(em >= 0x7C00u) * (112u << 23);  // Inf/NaN: exponent all ones
  normal |= static_cast<uint32_t>(em > 0x7C00u) << 22;            // NaN: quiet, payload kept
  // Zero and subnormals: em * 2^-24, exact in float32.
  const uint32_t tiny = std::bit_cast<uint32_t>(static_cast<float>(static_cast<int32_t>(em)) * 0x1p-24f);
  const uint32_t is_tiny = 0u - static_cast<uint32_t>(em < 0x0400u);
  return std::bit_cast<float>(sign | (normal & ~is_tiny) | (tiny & is_tiny));
}

inline uint16_t fp32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);   // NaN
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to Inf
  if (ax < 0x38800000u) {                                               // below 2^-14: F16 subnormal or 0
    const uint32_t e = ax >> 23;
    if (e < 102) return static_cast<uint16_t>(sign);  // below 2^-25: rounds to zero
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // value / 2^-24 = m >> shift, 14 <= shift <= 24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // may carry into the smallest normal: still right
    return static_cast<uint16_t>(sign | r);
  }
  // Normal: re-bias the exponent, round the 13 dropped bits to nearest even; a carry bumps the exponent.
  const uint32_t rebiased = ax - (112u << 23);
  return static_cast<uint16_t>(sign | ((rebiased + 0xFFFu + ((rebiased >> 13) & 1u)) >> 13));
}

inline float bf16_to_fp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t fp32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

// Rows of n values (any n >= 0).
void dequantize_row_f16(const uint16_t* src, float* dst, int64_t n);
void dequantize_row_bf16(const uint16_t* src, float* dst, int64_t n);
void quantize_row_f16(const float* src, uint16_t* dst, int64_t n);
void quantize_row_bf16(const float* src, uint16_t* dst, int64_t n);

}  // namespace pocketlm
