#pragma once
// The weights the encoders' searches minimise against, and the storing of a fitted scale in f16. Internal to
// src/formats (legacy_encode.cpp, kquants_encode.cpp).
//
// Weight of element j: importance[j] * sqrt(sigma2 + x[j]^2) with an importance vector (an imatrix column's
// mean squared activation), sqrt(sigma2 + x[j]^2) without one. sigma2 is the mean of x^2 over the row (legacy
// formats) or the 256-element super-block (k-quants). This is llama.cpp's convention for imatrix weights; using
// the same form without an imatrix keeps large weights from being rounded carelessly while small ones still
// count (x^2 alone would ignore them). A group whose weights are all zero (importance 0 on every column: the
// model never reads them) falls back to unit weights so that the fit stays defined.
#include <cmath>
#include <cstdint>

#include "formats/float.h"

namespace pocketlm {

inline double mean_square(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return n > 0 ? s / static_cast<double>(n) : 0.0;
}

// Loops without a running sum so that they vectorize (the encoders are compiled with -fno-math-errno for the
// sqrt: src/CMakeLists.txt). Every weight is >= 0 (importance is checked to be finite and >= 0), so "some
// weight > 0" is the same test as "their sum > 0". The values are the same as a plain loop's.
inline void search_weights(const float* x, const float* importance, int n, double sigma2, float* w) {
  if (importance)
    for (int i = 0; i < n; ++i)
      w[i] = static_cast<float>(importance[i] * std::sqrt(sigma2 + static_cast<double>(x[i]) * x[i]));
  else
    for (int i = 0; i < n; ++i) w[i] = static_cast<float>(std::sqrt(sigma2 + static_cast<double>(x[i]) * x[i]));
  bool any = false;
  for (int i = 0; i < n; ++i) any |= w[i] > 0.0f;
  if (!any)
    for (int i = 0; i < n; ++i) w[i] = 1.0f;
}

// f16 bits of v, clamped to the largest finite half (an encoder never stores Inf).
inline uint16_t fp16_finite(double v) {
  const uint16_t h = fp32_to_fp16(static_cast<float>(v));
  return (h & 0x7FFFu) >= 0x7C00u ? static_cast<uint16_t>((h & 0x8000u) | 0x7BFFu) : h;
}

// The f16 values next to h (one ulp smaller and larger in magnitude, staying finite), for trying
// the neighbours of a rounded scale.
inline uint16_t fp16_step(uint16_t h, int dir) {
  const uint16_t mag = h & 0x7FFFu;
  if (dir < 0) return mag == 0 ? h : static_cast<uint16_t>(h - 1);
  return mag >= 0x7BFFu ? h : static_cast<uint16_t>(h + 1);
}

}  // namespace pocketlm
