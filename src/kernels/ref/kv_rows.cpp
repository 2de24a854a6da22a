#include "kernels/ref/kv_rows.h"

#include <cassert>
#include <cmath>

#include "formats/float.h"

namespace pocketlm::ref {
using kernels::GemmFn;
using kernels::kKvRowQ4;
using kernels::kKvRowQ8;
using kernels::KvRow;
using kernels::WeightedRowsFn;

namespace {

// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/kv_score.h"
// clang-format on

constexpr float kMaxF16 = 65504.0f;

// f16 bits of a scale, saturated to the largest finite f16 (a scale of Inf would turn 0 quants into NaN).
uint16_t scale_bits(float d) {
  if (!(std::fabs(d) < kMaxF16)) d = std::signbit(d) ? -kMaxF16 : kMaxF16;  // also a NaN scale
  return fp32_to_fp16(d);
}

// round(x / d) clamped to [lo, hi]; fmin/fmax also map NaN to a bound (no undefined float -> int cast).
int quant(float x, float d, float lo, float hi) {
  return static_cast<int>(std::fmin(std::fmax(std::round(x / d), lo), hi));
}

void store_scale(uint8_t* dst, uint16_t h) { __builtin_memcpy(dst, &h, 2); }

int nibble(const uint8_t* qs, int64_t i) {  // value i of a q4 row's data: ggml Q4_0 order per 32 values
  const uint8_t b = qs[(i / 32) * 16 + i % 16];
  return (i % 32 < 16 ? b & 0x0F : b >> 4) - 8;
}

// Value i of a row's data. q8 quants are read through an int8_t pointer: GCC 12.2 at -O3 with
// -march=native (Ice Lake / Rocket Lake tuning) miscompiles the vectorized reduction
// `s += static_cast<int8_t>(u8[i]) * s8[i]` (wrong sums; -mtune=generic is fine), caught by
// KvRows.ScalarScoresAreTheDequantizedDot.
template <KvRow kK>
int value(const uint8_t* data, int64_t i) {
  if constexpr (kK == kKvRowQ8)
    return reinterpret_cast<const int8_t*>(data)[i];
  else
    return nibble(data, i);
}

template <KvRow kK>
int32_t row_dot(int64_t head_dim, const uint8_t* k_row, const uint8_t* q_row) {
  const int8_t* q = reinterpret_cast<const int8_t*>(q_row + 2);
  const uint8_t* ks = k_row + 2;
  int32_t sum = 0;
  for (int64_t i = 0; i < head_dim; ++i) sum += value<kK>(ks, i) * q[i];
  return sum;
}

template <KvRow kK>
void gemm_ref(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
              int64_t n_cols, float* out, int64_t ldo) {
  for (int64_t c = 0; c < n_cols; ++c) {
    const uint8_t* q = a + static_cast<size_t>(c) * a_stride;
    const float dq = fp16_to_fp32(kv_row_scale_bits(q));
    for (int64_t r = 0; r < n_rows; ++r) {
      const uint8_t* kr = w + static_cast<size_t>(r) * w_stride;
      out[c * ldo + r] = kv_score(row_dot<kK>(k, kr, q), fp16_to_fp32(kv_row_scale_bits(kr)), dq);
    }
  }
}

template <KvRow kV>
void weighted_rows_ref(int64_t n_rows, int64_t dim, const uint8_t* v, size_t v_stride, const float* p, size_t p_stride,
                       int64_t n_cols, float* out, size_t out_stride) {
  for (int64_t c = 0; c < n_cols; ++c)
    for (int64_t j = 0; j < n_rows; ++j) {
      const float pj = p[c * p_stride + j];
      if (pj == 0.0f) continue;  // masked positions
      const uint8_t* row = v + static_cast<size_t>(j) * v_stride;
      const float w = pj * fp16_to_fp32(kv_row_scale_bits(row));
      const uint8_t* qs = row + 2;
      float* o = out + c * out_stride;
      for (int64_t i = 0; i < dim; ++i) {
        o[i] += w * static_cast<float>(value<kV>(qs, i));
      }
    }
}

}  // namespace

void quantize_kv_row(KvType t, const float* x, uint8_t* dst, int64_t head_dim) {
  assert(t == KvType::Q8 || (t == KvType::Q4 && head_dim % 32 == 0));
  uint8_t* qs = dst + 2;
  if (t == KvType::Q8) {
    float amax = 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const uint16_t h = scale_bits(amax / 127.0f);
    const float d = fp16_to_fp32(h);
    store_scale(dst, h);
    for (int64_t i = 0; i < head_dim; ++i)
      qs[i] = static_cast<uint8_t>(static_cast<int8_t>(d == 0.0f ? 0 : quant(x[i], d, -127.0f, 127.0f)));
    return;
  }
  // Q4: the signed value of largest magnitude.
  float amax = 0.0f, m = 0.0f;
  for (int64_t i = 0; i < head_dim; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      m = x[i];
    }
  const uint16_t h = scale_bits(m / -8.0f);
  const float d = fp16_to_fp32(h);
  store_scale(dst, h);
  for (int64_t g = 0; g < head_dim / 32; ++g)
    for (int j = 0; j < 16; ++j) {
      const float* xs = x + 32 * g;
      const int lo = d == 0.0f ? 8 : quant(xs[j], d, -8.0f, 7.0f) + 8;
      const int hi = d == 0.0f ? 8 : quant(xs[j + 16], d, -8.0f, 7.0f) + 8;
      qs[16 * g + j] = static_cast<uint8_t>(lo | hi << 4);
    }
}

void dequantize_kv_row(KvType t, const uint8_t* src, float* dst, int64_t head_dim) {
  assert(t == KvType::Q8 || (t == KvType::Q4 && head_dim % 32 == 0));
  const float d = fp16_to_fp32(kv_row_scale_bits(src));
  const uint8_t* qs = src + 2;
  for (int64_t i = 0; i < head_dim; ++i)
    dst[i] = d * static_cast<float>(t == KvType::Q8 ? value<kKvRowQ8>(qs, i) : value<kKvRowQ4>(qs, i));
}

int32_t kv_row_dot(KvRow k_type, int64_t head_dim, const uint8_t* k_row, const uint8_t* q_row) {
  return k_type == kKvRowQ8 ? row_dot<kKvRowQ8>(head_dim, k_row, q_row) : row_dot<kKvRowQ4>(head_dim, k_row, q_row);
}

GemmFn kv_gemm(KvRow k_type) { return k_type == kKvRowQ8 ? gemm_ref<kKvRowQ8> : gemm_ref<kKvRowQ4>; }

WeightedRowsFn kv_weighted_rows(KvRow v_type) {
  return v_type == kKvRowQ8 ? weighted_rows_ref<kKvRowQ8> : weighted_rows_ref<kKvRowQ4>;
}

}  // namespace pocketlm::ref
