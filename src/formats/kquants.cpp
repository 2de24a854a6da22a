#include "formats/kquants.h"

#include <cassert>
#include <cmath>
#include <cstring>

#include "formats/float.h"
#include "formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {

void unpack_q2_K(const block_q2_K& b, int8_t q[QK_K]) {
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) q[128 * h + 32 * s + l] = static_cast<int8_t>((b.qs[32 * h + l] >> (2 * s)) & 3);
}

void unpack_q3_K(const block_q3_K& b, int8_t q[QK_K]) {
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int low = (b.qs[32 * h + l] >> (2 * s)) & 3;
        const int high_set = (b.hmask[l] >> (4 * h + s)) & 1;
        q[128 * h + 32 * s + l] = static_cast<int8_t>(low - (high_set ? 0 : 4));
      }
}

void unpack_q4_K(const block_q4_K& b, int8_t q[QK_K]) {
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) {
      q[64 * p + l] = static_cast<int8_t>(b.qs[32 * p + l] & 0x0F);
      q[64 * p + 32 + l] = static_cast<int8_t>(b.qs[32 * p + l] >> 4);
    }
}

void unpack_q5_K(const block_q5_K& b, int8_t q[QK_K]) {
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) {
      const int lo_bit = (b.qh[l] >> (2 * p)) & 1;
      const int hi_bit = (b.qh[l] >> (2 * p + 1)) & 1;
      q[64 * p + l] = static_cast<int8_t>((b.qs[32 * p + l] & 0x0F) | (lo_bit << 4));
      q[64 * p + 32 + l] = static_cast<int8_t>((b.qs[32 * p + l] >> 4) | (hi_bit << 4));
    }
}

void unpack_q6_K(const block_q6_K& b, int8_t q[QK_K]) {
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const uint8_t lbyte = b.ql[64 * h + 32 * (k & 1) + l];
        const int low = k < 2 ? (lbyte & 0x0F) : (lbyte >> 4);
        const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
        q[128 * h + 32 * k + l] = static_cast<int8_t>((low | (high << 4)) - 32);
      }
}

void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t n) {
  assert(n % QK_K == 0);
  int8_t q[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    unpack_q2_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * static_cast<float>(x[i].scales[j] & 0x0F);
      const float ml = dmin * static_cast<float>(x[i].scales[j] >> 4);
      for (int l = 16 * j; l < 16 * j + 16; ++l) y[l] = dl * static_cast<float>(q[l]) - ml;
    }
  }
}

void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t n) {
  assert(n % QK_K == 0);
  int8_t q[QK_K];
  int8_t sc[16];
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = fp16_to_fp32(x[i].d);
    q3_K_scales(x[i].scales, sc);
    unpack_q3_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * static_cast<float>(sc[j]);
      for (int l = 16 * j; l < 16 * j + 16; ++l) y[l] = dl * static_cast<float>(q[l]);
    }
  }
}

namespace {
// Q4_K and Q5_K share everything but the unpacking.
template <typename Block>
void dequantize_scale_min_k(const Block& b, const int8_t q[QK_K], float* y) {
  const float d = fp16_to_fp32(b.d);
  const float dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    k_scale_min(b.scales, j, sc, m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    for (int l = 32 * j; l < 32 * j + 32; ++l) y[l] = dl * static_cast<float>(q[l]) - ml;
  }
}
}  // namespace

void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t n) {
  assert(n % QK_K == 0);
  int8_t q[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    unpack_q4_K(x[i], q);
    dequantize_scale_min_k(x[i], q, y);
  }
}

void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t n) {
  assert(n % QK_K == 0);
  int8_t q[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    unpack_q5_K(x[i], q);
    dequantize_scale_min_k(x[i], q, y);
  }
}

void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t n) {
  assert(n % QK_K == 0);
  int8_t q[QK_K];
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = fp16_to_fp32(x[i].d);
    unpack_q6_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * static_cast<float>(x[i].scales[j]);
      for (int l = 16 * j; l < 16 * j + 16; ++l) y[l] = dl * static_cast<float>(q[l]);
    }
  }
}

void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t n) {
  assert(n % QK_K == 0);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K)
    for (int l = 0; l < QK_K; ++l) y[l] = x[i].d * static_cast<float>(x[i].qs[l]);
}

void quantize_row_q8_K(const float* x, block_q8_K* y, int64_t n) {
  assert(n % QK_K == 0);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int l = 0; l < QK_K; ++l) {
      const float ax = std::fabs(x[l]);
      if (ax > amax) {
        amax = ax;
        max = x[l];
      }
    }
    if (amax == 0.0f) {
      y[i].d = 0.0f;
      std::memset(y[i].qs, 0, sizeof(y[i].qs));
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int l = 0; l < QK_K; ++l) y[i].qs[l] = saturate_int8(round_half_even(iscale * x[l]));
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int l = 16 * j; l < 16 * j + 16; ++l) sum += y[i].qs[l];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

}  // namespace pocketlm
