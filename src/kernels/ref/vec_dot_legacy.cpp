#include <cassert>

#include "formats/float.h"
#include "formats/legacy.h"
#include "formats/rounding.h"
#include "kernels/ref/vec_dot_formats.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm::ref {
namespace {
// The exact integer dot of one 32-block: weight quants (with their offset removed) times activation quants.
// The weight values are narrowed to int8_t before multiplying: besides being their true range, this keeps
// GCC 12 from a wrong unsigned*signed byte dot product it otherwise picks for "(q & 15) - 8" at -O2.
template <typename Low, typename High>
inline int block_dot(const int8_t* aq, Low low, High high) {
  int sum = 0;
  for (int j = 0; j < 16; ++j) sum += static_cast<int8_t>(low(j)) * aq[j] + static_cast<int8_t>(high(j)) * aq[j + 16];
  return sum;
}

// Q4_0 and the pocketlm-only group sizes: a block of G values is G / 32 parts packed as q4_0 blocks that share
// one scale, each dotted with its own q8_0 activation block, with Q4_0's float steps per part.
template <class Block>
float vec_dot_q4_0_parts(int64_t n, const void* w_row, const void* act_row) {
  constexpr int kParts = static_cast<int>(sizeof(Block::qs)) / 16;
  assert(n % (32 * kParts) == 0);
  const auto* w = static_cast<const Block*>(w_row);
  const auto* a = static_cast<const block_q8_0*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / (32 * kParts); ++b) {
    for (int p = 0; p < kParts; ++p) {
      const uint8_t* qs = w[b].qs + 16 * p;
      const block_q8_0& ab = a[b * kParts + p];
      const int isum = block_dot(
          ab.qs, [qs](int j) { return q4_low(qs, j) - 8; }, [qs](int j) { return q4_high(qs, j) - 8; });
      sum += static_cast<float>(isum) * fp16_to_fp32(w[b].d) * fp16_to_fp32(ab.d);
    }
  }
  return sum;
}
}  // namespace

float vec_dot_q4_0_q8_0(int64_t n, const void* w_row, const void* act_row) {
  return vec_dot_q4_0_parts<block_q4_0>(n, w_row, act_row);
}
float vec_dot_q4_0_g64_q8_0(int64_t n, const void* w_row, const void* act_row) {
  return vec_dot_q4_0_parts<block_q4_0_g64>(n, w_row, act_row);
}
float vec_dot_q4_0_g128_q8_0(int64_t n, const void* w_row, const void* act_row) {
  return vec_dot_q4_0_parts<block_q4_0_g128>(n, w_row, act_row);
}

float vec_dot_q4_1_q8_1(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK4_1 == 0);
  const auto* w = static_cast<const block_q4_1*>(w_row);
  const auto* a = static_cast<const block_q8_1*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK4_1; ++b) {
    const uint8_t* qs = w[b].qs;
    const int isum = block_dot(
        a[b].qs, [qs](int j) { return q4_low(qs, j); }, [qs](int j) { return q4_high(qs, j); });
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d)) * static_cast<float>(isum) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
  }
  return sum;
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK5_0 == 0);
  const auto* w = static_cast<const block_q5_0*>(w_row);
  const auto* a = static_cast<const block_q8_0*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK5_0; ++b) {
    const uint8_t* qs = w[b].qs;
    const uint32_t qh = q5_high_bits(w[b].qh);
    const int isum = block_dot(
        a[b].qs, [qs, qh](int j) { return q5_low(qs, qh, j) - 16; },
        [qs, qh](int j) { return q5_high(qs, qh, j) - 16; });
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d)) * static_cast<float>(isum);
  }
  return sum;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK5_1 == 0);
  const auto* w = static_cast<const block_q5_1*>(w_row);
  const auto* a = static_cast<const block_q8_1*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK5_1; ++b) {
    const uint8_t* qs = w[b].qs;
    const uint32_t qh = q5_high_bits(w[b].qh);
    const int isum = block_dot(
        a[b].qs, [qs, qh](int j) { return q5_low(qs, qh, j); }, [qs, qh](int j) { return q5_high(qs, qh, j); });
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d)) * static_cast<float>(isum) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
  }
  return sum;
}

float vec_dot_q8_0_q8_0(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK8_0 == 0);
  const auto* w = static_cast<const block_q8_0*>(w_row);
  const auto* a = static_cast<const block_q8_0*>(act_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    int isum = 0;
    for (int j = 0; j < QK8_0; ++j) isum += w[b].qs[j] * a[b].qs[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
  }
  return sum;
}

}  // namespace pocketlm::ref
