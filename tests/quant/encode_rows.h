#pragma once
// Test rows for the encoders and the error measure the encoder tests share.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "formats/dequantize.h"
#include "formats/ggml_type.h"

namespace pocketlm::test {

// Gaussian rows (sigma 0.02, like trained weights) with, when heavy_tail, 1 % of the values 10-40x larger.
inline std::vector<float> gaussian_rows(int64_t n_rows, int64_t n_per_row, uint32_t seed, bool heavy_tail) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n_rows * n_per_row));
  for (auto& x : v) {
    x = g(rng);
    if (heavy_tail && u(rng) < 0.01f) x *= 10.0f + 30.0f * u(rng);
  }
  return v;
}

// Importance like an imatrix's: log-normal over columns (mean squared activations spread over decades).
inline std::vector<float> lognormal_importance(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.5f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = std::exp(g(rng));
  return v;
}

// Weighted squared error sums of a reconstruction: sum_j w_j (x_j - y_j)^2 and sum_j w_j over all rows, with
// w = importance (per column) or 1.
struct ErrorSums {
  double err = 0, weight = 0;
  double rmse() const { return weight > 0 ? std::sqrt(err / weight) : 0.0; }
};

inline ErrorSums reconstruction_error(GgmlType type, const std::vector<uint8_t>& blocks, const float* x, int64_t n_rows,
                                      int64_t n_per_row, const float* importance) {
  ErrorSums s;
  std::vector<float> y(static_cast<size_t>(n_per_row));
  const size_t rs = row_size(type, n_per_row);
  for (int64_t r = 0; r < n_rows; ++r) {
    dequantize_row(type, blocks.data() + static_cast<size_t>(r) * rs, y.data(), n_per_row);
    for (int64_t j = 0; j < n_per_row; ++j) {
      const double w = importance ? importance[j] : 1.0;
      const double d = static_cast<double>(x[r * n_per_row + j]) - y[static_cast<size_t>(j)];
      s.err += w * d * d;
      s.weight += w;
    }
  }
  return s;
}

}  // namespace pocketlm::test
