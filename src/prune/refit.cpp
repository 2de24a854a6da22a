#include "prune/refit.h"

#include <cmath>

namespace pocketlm {

Expected<std::vector<float>> refit_columns(std::span<const float> w, int64_t rows, int64_t n,
                                           std::span<const float> gram, std::span<const int64_t> keep, double ridge,
                                           std::span<const float> cross) {
  const int64_t k = static_cast<int64_t>(keep.size());
  const auto at = [n](int64_t i, int64_t j) { return static_cast<size_t>(i * n + j); };
  // A = C_SS + lambda I (k x k, lower triangle after factorisation), B = C_S: (k x n).
  std::vector<double> a(static_cast<size_t>(k * k));
  double diag = 0;
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j)
      a[static_cast<size_t>(i * k + j)] = gram[at(keep[static_cast<size_t>(i)], keep[static_cast<size_t>(j)])];
    diag += a[static_cast<size_t>(i * k + i)];
  }
  const double lambda = ridge * (k > 0 ? diag / static_cast<double>(k) : 0.0) + 1e-12;
  for (int64_t i = 0; i < k; ++i) a[static_cast<size_t>(i * k + i)] += lambda;
  // Cholesky: A = G G^T, G lower triangular, stored in a.
  for (int64_t j = 0; j < k; ++j) {
    double s = a[static_cast<size_t>(j * k + j)];
    for (int64_t p = 0; p < j; ++p) s -= a[static_cast<size_t>(j * k + p)] * a[static_cast<size_t>(j * k + p)];
    if (!(s > 0))
      return Error("least-squares refit: the calibration Gram matrix of the kept columns is not positive definite");
    const double g = std::sqrt(s);
    a[static_cast<size_t>(j * k + j)] = g;
    for (int64_t i = j + 1; i < k; ++i) {
      double v = a[static_cast<size_t>(i * k + j)];
      for (int64_t p = 0; p < j; ++p) v -= a[static_cast<size_t>(i * k + p)] * a[static_cast<size_t>(j * k + p)];
      a[static_cast<size_t>(i * k + j)] = v / g;
    }
  }
  std::vector<float> out(static_cast<size_t>(rows * k));
  std::vector<double> b(static_cast<size_t>(k)), wr(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) wr[static_cast<size_t>(j)] = w[static_cast<size_t>(r * n + j)];
    // b = C_S: w_r
    for (int64_t i = 0; i < k; ++i) {
      const float* c = &gram[at(keep[static_cast<size_t>(i)], 0)];
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += c[j] * wr[static_cast<size_t>(j)];
      if (!cross.empty()) s += cross[static_cast<size_t>(r * n + keep[static_cast<size_t>(i)])];
      b[static_cast<size_t>(i)] = s;
    }
    // Solve G y = b, then G^T v = y.
    for (int64_t i = 0; i < k; ++i) {
      double s = b[static_cast<size_t>(i)];
      for (int64_t p = 0; p < i; ++p) s -= a[static_cast<size_t>(i * k + p)] * b[static_cast<size_t>(p)];
      b[static_cast<size_t>(i)] = s / a[static_cast<size_t>(i * k + i)];
    }
    for (int64_t i = k - 1; i >= 0; --i) {
      double s = b[static_cast<size_t>(i)];
      for (int64_t p = i + 1; p < k; ++p) s -= a[static_cast<size_t>(p * k + i)] * b[static_cast<size_t>(p)];
      b[static_cast<size_t>(i)] = s / a[static_cast<size_t>(i * k + i)];
    }
    for (int64_t i = 0; i < k; ++i) out[static_cast<size_t>(r * k + i)] = static_cast<float>(b[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace pocketlm
