#include <cassert>

#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/rounding.h"
#include "kernels/ref/vec_dot_formats.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm::ref {
namespace {
// Scale-weighted integer sums of one super-block in eight lanes (lane = element index mod 8), as ggml's
// generic code keeps them: lanes[l] = sum over elements e = l (mod 8) of scale(e/G) * wq[e] * aq[e], with
// G = 16 or 32 elements per scale. Exact in int32 for every format here.
template <int G, typename Scale>
void lane_sums(const int8_t* wq, const int8_t* aq, const Scale* scales, int32_t lanes[8]) {
  for (int l = 0; l < 8; ++l) lanes[l] = 0;
  for (int g = 0; g < QK_K / G; ++g) {
    const int32_t s = scales[g];
    const int8_t* w = wq + G * g;
    const int8_t* a = aq + G * g;
    for (int c = 0; c < G; c += 8)
      for (int l = 0; l < 8; ++l) lanes[l] += s * (w[c + l] * a[c + l]);
  }
}

// Sum over the 16 groups of 16 activations of bsums[j] * (min of the group): PerMin elements share a min.
template <int PerMin>
int32_t mins_dot_bsums(const int16_t bsums[16], const uint8_t* mins) {
  int32_t sum = 0;
  for (int j = 0; j < QK_K / 16; ++j) sum += bsums[j] * mins[j / (PerMin / 16)];
  return sum;
}

// Lanes-then-mins accumulation shared by Q4_K and Q5_K.
template <typename Block, void (*Unpack)(const Block&, int8_t*)>
float dot_scale_min_k(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK_K == 0);
  const auto* w = static_cast<const Block*>(w_row);
  const auto* a = static_cast<const block_q8_K*>(act_row);
  int8_t q[QK_K];
  uint8_t sc[8], mn[8];
  int32_t lanes[8];
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    Unpack(w[i], q);
    for (int j = 0; j < 8; ++j) k_scale_min(w[i].scales, j, sc[j], mn[j]);
    lane_sums<32>(q, a[i].qs, sc, lanes);
    const int32_t isum_mins = mins_dot_bsums<32>(a[i].bsums, mn);
    const float d = fp16_to_fp32(w[i].d) * a[i].d;
    for (int l = 0; l < 8; ++l) acc[l] += d * static_cast<float>(lanes[l]);
    const float dmin = fp16_to_fp32(w[i].dmin) * a[i].d;
    sum -= dmin * static_cast<float>(isum_mins);
  }
  for (int l = 0; l < 8; ++l) sum += acc[l];
  return sum;
}
}  // namespace

float vec_dot_q2_K_q8_K(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK_K == 0);
  const auto* w = static_cast<const block_q2_K*>(w_row);
  const auto* a = static_cast<const block_q8_K*>(act_row);
  int8_t q[QK_K];
  uint8_t sc[16], mn[16];
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    unpack_q2_K(w[i], q);
    for (int j = 0; j < 16; ++j) {
      sc[j] = static_cast<uint8_t>(w[i].scales[j] & 0x0F);
      mn[j] = static_cast<uint8_t>(w[i].scales[j] >> 4);
    }
    int32_t lanes[8];
    lane_sums<16>(q, a[i].qs, sc, lanes);
    const int32_t isum = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
    const int32_t isum_mins = mins_dot_bsums<16>(a[i].bsums, mn);
    const float dall = a[i].d * fp16_to_fp32(w[i].d);
    const float dmin = a[i].d * fp16_to_fp32(w[i].dmin);
    sum += dall * static_cast<float>(isum) - dmin * static_cast<float>(isum_mins);
  }
  return sum;
}

float vec_dot_q3_K_q8_K(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK_K == 0);
  const auto* w = static_cast<const block_q3_K*>(w_row);
  const auto* a = static_cast<const block_q8_K*>(act_row);
  int8_t q[QK_K];
  int8_t sc[16];
  int32_t lanes[8];
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n / QK_K; ++i) {
    unpack_q3_K(w[i], q);
    q3_K_scales(w[i].scales, sc);
    lane_sums<16>(q, a[i].qs, sc, lanes);
    const float d = fp16_to_fp32(w[i].d) * a[i].d;
    for (int l = 0; l < 8; ++l) acc[l] += d * static_cast<float>(lanes[l]);
  }
  float sum = 0.0f;
  for (int l = 0; l < 8; ++l) sum += acc[l];
  return sum;
}

float vec_dot_q4_K_q8_K(int64_t n, const void* w_row, const void* act_row) {
  return dot_scale_min_k<block_q4_K, unpack_q4_K>(n, w_row, act_row);
}

float vec_dot_q5_K_q8_K(int64_t n, const void* w_row, const void* act_row) {
  return dot_scale_min_k<block_q5_K, unpack_q5_K>(n, w_row, act_row);
}

float vec_dot_q6_K_q8_K(int64_t n, const void* w_row, const void* act_row) {
  assert(n % QK_K == 0);
  const auto* w = static_cast<const block_q6_K*>(w_row);
  const auto* a = static_cast<const block_q8_K*>(act_row);
  int8_t q[QK_K];
  int32_t lanes[8];
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n / QK_K; ++i) {
    unpack_q6_K(w[i], q);
    lane_sums<16>(q, a[i].qs, w[i].scales, lanes);
    const float d = fp16_to_fp32(w[i].d) * a[i].d;
    for (int l = 0; l < 8; ++l) acc[l] += d * static_cast<float>(lanes[l]);
  }
  float sum = 0.0f;
  for (int l = 0; l < 8; ++l) sum += acc[l];
  return sum;
}

}  // namespace pocketlm::ref
