#include <cassert>

#include "kernels/ref/vec_dot_formats.h"
#include "quant/formats/float.h"
#include "quant/formats/legacy.h"
#include "quant/formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm::ref {
namespace {
// Exact integer dot of a block's 32 weight quants (offset already applied) with 32 activation quants.
inline int dot32(const int8_t* wq, const int8_t* aq) {
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += wq[j] * aq[j];
  return sum;
}

inline void offset_quants(const uint8_t* u, int offset, int8_t* q) {
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(u[j] - offset);
}
}  // namespace

float vec_dot_q4_0_q8_0(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK4_0 == 0);
  const auto* w = static_cast<const block_q4_0*>(w_row);
  const auto* a = static_cast<const block_q8_0*>(act_row);
  uint8_t u[32];
  int8_t q[32];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK4_0; ++b) {
    unpack_nibbles(w[b].qs, u);
    offset_quants(u, 8, q);
    const int isum = dot32(q, a[b].qs);
    sum += static_cast<float>(isum) * fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d);
  }
  return sum;
}

float vec_dot_q4_1_q8_1(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK4_1 == 0);
  const auto* w = static_cast<const block_q4_1*>(w_row);
  const auto* a = static_cast<const block_q8_1*>(act_row);
  uint8_t u[32];
  int8_t q[32];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK4_1; ++b) {
    unpack_nibbles(w[b].qs, u);
    offset_quants(u, 0, q);
    const int isum = dot32(q, a[b].qs);
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d)) * static_cast<float>(isum) +
           fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
  }
  return sum;
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK5_0 == 0);
  const auto* w = static_cast<const block_q5_0*>(w_row);
  const auto* a = static_cast<const block_q8_0*>(act_row);
  uint8_t u[32];
  int8_t q[32];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK5_0; ++b) {
    unpack_5bit(w[b].qs, w[b].qh, u);
    offset_quants(u, 16, q);
    const int isum = dot32(q, a[b].qs);
    sum += (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d)) * static_cast<float>(isum);
  }
  return sum;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK5_1 == 0);
  const auto* w = static_cast<const block_q5_1*>(w_row);
  const auto* a = static_cast<const block_q8_1*>(act_row);
  uint8_t u[32];
  int8_t q[32];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK5_1; ++b) {
    unpack_5bit(w[b].qs, w[b].qh, u);
    offset_quants(u, 0, q);
    const int isum = dot32(q, a[b].qs);
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
    const int isum = dot32(w[b].qs, a[b].qs);
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
  }
  return sum;
}

}  // namespace pocketlm::ref
