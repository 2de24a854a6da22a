#include "formats/legacy.h"

#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/float.h"
#include "formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {

namespace {
// 32 values of Q4_0's packing (16 bytes of nibbles) with the scale d: a q4_0 block, or one part of a G-block.
void dequantize_q4_0_part(const uint8_t qs[16], float d, float* y) {
  for (int j = 0; j < 16; ++j) y[j] = static_cast<float>(q4_low(qs, j) - 8) * d;
  for (int j = 0; j < 16; ++j) y[j + 16] = static_cast<float>(q4_high(qs, j) - 8) * d;
}
}  // namespace

void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n) {
  assert(n % QK4_0 == 0);
  for (int64_t b = 0; b < n / QK4_0; ++b, y += QK4_0) dequantize_q4_0_part(x[b].qs, fp16_to_fp32(x[b].d), y);
}

template <int G>
void dequantize_row_q4_0_g(const block_q4_0_g<G>* x, float* y, int64_t n) {
  assert(n % G == 0);
  for (int64_t b = 0; b < n / G; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int p = 0; p < block_q4_0_g<G>::kParts; ++p, y += 32) dequantize_q4_0_part(x[b].qs + 16 * p, d, y);
  }
}
template void dequantize_row_q4_0_g<QK4_0_G64>(const block_q4_0_g64*, float*, int64_t);
template void dequantize_row_q4_0_g<QK4_0_G128>(const block_q4_0_g128*, float*, int64_t);

void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t n) {
  assert(n % QK4_1 == 0);
  for (int64_t b = 0; b < n / QK4_1; ++b, y += QK4_1) {
    const float d = fp16_to_fp32(x[b].d);
    const float m = fp16_to_fp32(x[b].m);
    for (int j = 0; j < 16; ++j) y[j] = static_cast<float>(q4_low(x[b].qs, j)) * d + m;
    for (int j = 0; j < 16; ++j) y[j + 16] = static_cast<float>(q4_high(x[b].qs, j)) * d + m;
  }
}

void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t n) {
  assert(n % QK5_0 == 0);
  for (int64_t b = 0; b < n / QK5_0; ++b, y += QK5_0) {
    const float d = fp16_to_fp32(x[b].d);
    const uint32_t qh = q5_high_bits(x[b].qh);
    for (int j = 0; j < 16; ++j) y[j] = static_cast<float>(q5_low(x[b].qs, qh, j) - 16) * d;
    for (int j = 0; j < 16; ++j) y[j + 16] = static_cast<float>(q5_high(x[b].qs, qh, j) - 16) * d;
  }
}

void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t n) {
  assert(n % QK5_1 == 0);
  for (int64_t b = 0; b < n / QK5_1; ++b, y += QK5_1) {
    const float d = fp16_to_fp32(x[b].d);
    const float m = fp16_to_fp32(x[b].m);
    const uint32_t qh = q5_high_bits(x[b].qh);
    for (int j = 0; j < 16; ++j) y[j] = static_cast<float>(q5_low(x[b].qs, qh, j)) * d + m;
    for (int j = 0; j < 16; ++j) y[j + 16] = static_cast<float>(q5_high(x[b].qs, qh, j)) * d + m;
  }
}

void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n) {
  assert(n % QK8_0 == 0);
  for (int64_t b = 0; b < n / QK8_0; ++b, y += QK8_0) {
    const float d = fp16_to_fp32(x[b].d);
    for (int j = 0; j < QK8_0; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void dequantize_row_q8_1(const block_q8_1* x, float* y, int64_t n) {
  assert(n % QK8_1 == 0);
  for (int64_t b = 0; b < n / QK8_1; ++b, y += QK8_1) {
    const float d = fp16_to_fp32(x[b].d);
    for (int j = 0; j < QK8_1; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

namespace {
// One 32-value block: returns the float32 scale d; writes the rounded quants.
// Written so that the compiler vectorizes both loops (std::fmax is a library call that kept them scalar: it was
// 77 % of `pocketlm quantize` to q8_0). The maximum is fmax's: a NaN never wins it.
float quantize_block_q8(const float* x, int8_t* qs, Q8Rounding rounding) {
  // The largest |x| through its bits (non-negative floats order as their bit patterns); NaN's bits (above
  // +Inf's) count as 0, as fmax ignores a NaN.
  uint32_t amax_bits = 0;
  for (int j = 0; j < 32; ++j) {
    uint32_t b;
    std::memcpy(&b, &x[j], 4);
    b &= 0x7FFFFFFFu;
    b = b > 0x7F800000u ? 0u : b;
    amax_bits = b > amax_bits ? b : amax_bits;
  }
  float amax;
  std::memcpy(&amax, &amax_bits, 4);
  const float d = amax / 127.0f;
  if (rounding == Q8Rounding::X86Simd) {
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < 32; ++j) qs[j] = saturate_int8(round_half_even(x[j] * id));
  } else {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) qs[j] = saturate_int8(round_half_away(x[j] * id));
  }
  return d;
}
}  // namespace

void quantize_row_q8_0(const float* x, block_q8_0* y, int64_t n, Q8Rounding rounding) {
  assert(n % QK8_0 == 0);
  for (int64_t b = 0; b < n / QK8_0; ++b, x += QK8_0) y[b].d = fp32_to_fp16(quantize_block_q8(x, y[b].qs, rounding));
}

void quantize_row_q8_1(const float* x, block_q8_1* y, int64_t n, Q8Rounding rounding) {
  assert(n % QK8_1 == 0);
  for (int64_t b = 0; b < n / QK8_1; ++b, x += QK8_1) {
    const float d = quantize_block_q8(x, y[b].qs, rounding);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) sum += y[b].qs[j];
    y[b].d = fp32_to_fp16(d);
    y[b].s = fp32_to_fp16(static_cast<float>(sum) * d);
  }
}

}  // namespace pocketlm
