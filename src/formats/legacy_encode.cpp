// Encoders of the 32-element formats (layouts in legacy.h). See docs/quantization.md for the search.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "formats/encode_weights.h"
#include "formats/float.h"
#include "formats/legacy.h"
#include "formats/rounding.h"
#include "formats/scale_search.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {
namespace {

// Symmetric groups of n values (Q4_0: q - 8, Q5_0: q - 16; n = 32, or 64 / 128 for the pocketlm-only
// Q4_0 group sizes): fitted d, stored in f16 (best of the rounded value and its neighbours), quants L in
// [lo, hi] re-rounded against the stored d. Returns the f16 bits.
uint16_t encode_symmetric_block(const float* x, const float* w, int n, int lo, int hi, int* L, QuantSearch search) {
  const double d = search == QuantSearch::exact ? fit_symmetric(x, w, n, lo, hi) : fit_symmetric_fast(x, w, n, lo, hi);
  uint16_t best = fp16_finite(d);
  double best_err = symmetric_error(x, w, n, fp16_to_fp32(best), lo, hi);
  const uint16_t centre = best;
  for (int dir = -1; dir <= 1; dir += 2) {
    const uint16_t h = fp16_step(centre, dir);
    const double err = symmetric_error(x, w, n, fp16_to_fp32(h), lo, hi);
    if (err < best_err) {
      best_err = err;
      best = h;
    }
  }
  const float df = fp16_to_fp32(best);
  for (int j = 0; j < n; ++j) L[j] = df != 0.0f ? nearest_int_clamped(x[j] / df, lo, hi) : 0;
  return best;
}

double affine_block_error(const float* x, const float* w, float d, float m, int nmax) {
  double err = 0;
  for (int j = 0; j < 32; ++j) {
    const int l = d != 0.0f ? nearest_int_clamped((x[j] - m) / d, 0, nmax) : 0;
    const double diff = static_cast<double>(static_cast<float>(l) * d + m) - x[j];  // decoder: q * d + m
    err += static_cast<double>(w[j]) * diff * diff;
  }
  return err;
}

// Affine blocks (Q4_1, Q5_1: q * d + m): fitted (d, m), both stored in f16 trying each one's neighbours.
void encode_affine_block(const float* x, const float* w, int nmax, uint16_t& d_out, uint16_t& m_out, int L[32],
                         QuantSearch search) {
  const AffineFit f = fit_affine(x, w, 32, nmax, /*allow_positive_min=*/true, search);
  const uint16_t d0 = fp16_finite(f.d), m0 = fp16_finite(f.m);
  double best_err = HUGE_VAL;
  for (int dd = -1; dd <= 1; ++dd)
    for (int dm = -1; dm <= 1; ++dm) {
      const uint16_t dh = dd == 0 ? d0 : fp16_step(d0, dd);
      const uint16_t mh = dm == 0 ? m0 : fp16_step(m0, dm);
      const double err = affine_block_error(x, w, fp16_to_fp32(dh), fp16_to_fp32(mh), nmax);
      if (err < best_err) {
        best_err = err;
        d_out = dh;
        m_out = mh;
      }
    }
  const float d = fp16_to_fp32(d_out), m = fp16_to_fp32(m_out);
  for (int j = 0; j < 32; ++j) L[j] = d != 0.0f ? nearest_int_clamped((x[j] - m) / d, 0, nmax) : 0;
}

void pack_nibbles(const int L[32], int bias, uint8_t qs[16]) {
  for (int j = 0; j < 16; ++j)
    qs[j] = static_cast<uint8_t>(((L[j] + bias) & 0x0F) | (((L[j + 16] + bias) & 0x0F) << 4));
}

void pack_fifth_bits(const int L[32], int bias, uint8_t qh[4]) {
  uint32_t bits = 0;
  for (int j = 0; j < 32; ++j) bits |= static_cast<uint32_t>(((L[j] + bias) >> 4) & 1) << j;
  std::memcpy(qh, &bits, sizeof(bits));
}

// Calls fn(b, x, w) for each group of G values of a row, w = the group's search weights (sigma2 = the row's
// mean square, encode_weights.h).
template <int G = 32, typename Fn>
void for_each_block(const float* x, int64_t n, const float* importance, Fn&& fn) {
  assert(n % G == 0);
  const double sigma2 = mean_square(x, n);
  float w[G];
  for (int64_t b = 0; b < n / G; ++b) {
    search_weights(x + G * b, importance ? importance + G * b : nullptr, G, sigma2, w);
    fn(b, x + G * b, w);
  }
}

void pack_block(const int L[32], block_q4_0& y) { pack_quants_q4_0(L, y); }
void pack_block(const int L[32], block_q5_0& y) { pack_quants_q5_0(L, y); }
void pack_block(const int L[32], block_q4_1& y) { pack_quants_q4_1(L, y); }
void pack_block(const int L[32], block_q5_1& y) { pack_quants_q5_1(L, y); }

// 1 / d, or 0 when d is 0 or so small (subnormal) that 1 / d overflows: such a block stores d = 0 in f16 and
// decodes to zeros whatever its quants.
inline float reference_inverse(float d) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  return std::isfinite(id) ? id : 0.0f;
}
// v truncated toward zero, as ggml's cast to int8_t: v is in [0, 2^7) for ordinary blocks. Where the stored scale
// had to be capped at f16's largest (|x| beyond ~1e6) or the block's range overflows float, v can leave that
// range (even to -Inf): it is kept in [0, 127] so that the cast is defined (the quants then saturate).
inline int truncate_small(float v) { return static_cast<int>(v > 0.0f ? (v < 127.0f ? v : 127.0f) : 0.0f); }

// QuantSearch::nearest: ggml's reference rounding, what llama-quantize writes without an imatrix (same bytes).
// Symmetric: d = v / lo for v the value of largest magnitude (the first of equal ones); each quant is
// floor(x * (1 / d) - lo + 0.5), 1 / d from the float d (not the stored f16), capped at hi - lo.
// A d beyond f16's range is stored as the largest finite f16 and the quants are rounded against it.
template <int G, typename Block>
void reference_rows(const float* x, int64_t n, int lo, int hi, Block* y) {
  assert(n % G == 0);
  int L[G];
  for (int64_t b = 0; b < n / G; ++b) {
    const float* xb = x + G * b;
    float amax = 0, v = 0;
    for (int j = 0; j < G; ++j)
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        v = xb[j];
      }
    float d = v / static_cast<float>(lo);
    y[b].d = fp16_finite(d);
    if (std::fabs(d) > 65504.0f) d = fp16_to_fp32(y[b].d);
    const float id = reference_inverse(d), bias = 0.5f - static_cast<float>(lo);
    for (int j = 0; j < G; ++j) L[j] = std::min(hi - lo, truncate_small(xb[j] * id + bias)) + lo;
    if constexpr (G == 32)
      pack_block(L, y[b]);
    else
      pack_quants_q4_0_g<G>(L, y[b]);
  }
}

// Affine (Q4_1, Q5_1): d = (max - min) / nmax, m = min, each quant floor((x - min) * (1 / d) + 0.5) capped at
// nmax, from the float d and min.
template <typename Block>
void reference_affine_rows(const float* x, int64_t n, int nmax, Block* y) {
  assert(n % 32 == 0);
  int L[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    float mn = xb[0], mx = xb[0];
    for (int j = 1; j < 32; ++j) {
      mn = std::min(mn, xb[j]);
      mx = std::max(mx, xb[j]);
    }
    float d = (mx - mn) / static_cast<float>(nmax);
    y[b].d = fp16_finite(d);
    y[b].m = fp16_finite(mn);
    if (std::fabs(d) > 65504.0f) d = fp16_to_fp32(y[b].d);
    const float id = reference_inverse(d);
    for (int j = 0; j < 32; ++j) L[j] = std::min(nmax, truncate_small((xb[j] - mn) * id + 0.5f));
    pack_block(L, y[b]);
  }
}

}  // namespace

void pack_quants_q4_0(const int L[32], block_q4_0& y) { pack_nibbles(L, 8, y.qs); }
void pack_quants_q4_1(const int L[32], block_q4_1& y) { pack_nibbles(L, 0, y.qs); }
void pack_quants_q5_0(const int L[32], block_q5_0& y) {
  pack_nibbles(L, 16, y.qs);
  pack_fifth_bits(L, 16, y.qh);
}
void pack_quants_q5_1(const int L[32], block_q5_1& y) {
  pack_nibbles(L, 0, y.qs);
  pack_fifth_bits(L, 0, y.qh);
}
void pack_quants_q8_0(const int L[32], block_q8_0& y) {
  for (int j = 0; j < 32; ++j) y.qs[j] = static_cast<int8_t>(L[j]);
}
template <int G>
void pack_quants_q4_0_g(const int L[G], block_q4_0_g<G>& y) {
  for (int p = 0; p < block_q4_0_g<G>::kParts; ++p) pack_nibbles(L + 32 * p, 8, y.qs + 16 * p);
}
template void pack_quants_q4_0_g<QK4_0_G64>(const int*, block_q4_0_g64&);
template void pack_quants_q4_0_g<QK4_0_G128>(const int*, block_q4_0_g128&);

void encode_row_q4_0(const float* x, block_q4_0* y, int64_t n, const float* importance, QuantSearch search) {
  if (search == QuantSearch::nearest) return reference_rows<32>(x, n, -8, 7, y);
  for_each_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    int L[32];
    y[b].d = encode_symmetric_block(xb, w, 32, -8, 7, L, search);
    pack_quants_q4_0(L, y[b]);
  });
}

template <int G>
void encode_row_q4_0_g(const float* x, block_q4_0_g<G>* y, int64_t n, const float* importance, QuantSearch search) {
  if (search == QuantSearch::nearest) return reference_rows<G>(x, n, -8, 7, y);
  for_each_block<G>(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    int L[G];
    y[b].d = encode_symmetric_block(xb, w, G, -8, 7, L, search);
    pack_quants_q4_0_g<G>(L, y[b]);
  });
}
template void encode_row_q4_0_g<QK4_0_G64>(const float*, block_q4_0_g64*, int64_t, const float*, QuantSearch);
template void encode_row_q4_0_g<QK4_0_G128>(const float*, block_q4_0_g128*, int64_t, const float*, QuantSearch);

void encode_row_q5_0(const float* x, block_q5_0* y, int64_t n, const float* importance, QuantSearch search) {
  if (search == QuantSearch::nearest) return reference_rows<32>(x, n, -16, 15, y);
  for_each_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    int L[32];
    y[b].d = encode_symmetric_block(xb, w, 32, -16, 15, L, search);
    pack_quants_q5_0(L, y[b]);
  });
}

void encode_row_q4_1(const float* x, block_q4_1* y, int64_t n, const float* importance, QuantSearch search) {
  if (search == QuantSearch::nearest) return reference_affine_rows(x, n, 15, y);
  for_each_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    int L[32];
    encode_affine_block(xb, w, 15, y[b].d, y[b].m, L, search);
    pack_quants_q4_1(L, y[b]);
  });
}

void encode_row_q5_1(const float* x, block_q5_1* y, int64_t n, const float* importance, QuantSearch search) {
  if (search == QuantSearch::nearest) return reference_affine_rows(x, n, 31, y);
  for_each_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    int L[32];
    encode_affine_block(xb, w, 31, y[b].d, y[b].m, L, search);
    pack_quants_q5_1(L, y[b]);
  });
}

void encode_row_q8_0(const float* x, block_q8_0* y, int64_t n, const float* /*importance*/, QuantSearch /*search*/) {
  quantize_row_q8_0(x, y, n);
  // ggml stores an infinite scale when amax / 127 overflows f16 (|x| > ~8.3e6), which decodes to Inf/NaN.
  // Such blocks get the largest finite scale instead, their values saturating at +-127 * 65504.
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    if ((y[b].d & 0x7FFFu) < 0x7C00u) continue;
    y[b].d = 0x7BFFu;
    const float d = fp16_to_fp32(y[b].d);
    for (int j = 0; j < QK8_0; ++j)
      y[b].qs[j] = static_cast<int8_t>(nearest_int_clamped(x[QK8_0 * b + j] / d, -127, 127));
  }
}

}  // namespace pocketlm
