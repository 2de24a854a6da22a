#include "quant/methods/gptq.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "formats/block_grid.h"
#include "formats/quantize.h"
#include "util/thread_pool.h"

namespace pocketlm {

Expected<std::vector<float>> gptq_inverse_factor(const float* H, int64_t n, double damp, ThreadPool* pool) {
  if (n <= 0) return Error("gptq: empty Hessian");
  const auto N = static_cast<size_t>(n);
  // A = J H J (reversed order), damped, in double.
  std::vector<double> A(N * N);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double h = H[i * n + i];
    if (!std::isfinite(h) || h < 0)
      return Error("gptq: the Hessian's diagonal entry " + std::to_string(i) + " is " + std::to_string(h));
    mean_diag += h;
  }
  mean_diag /= static_cast<double>(n);
  if (!(mean_diag > 0)) mean_diag = 1.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double h = H[(n - 1 - i) * n + (n - 1 - j)];
      if (!std::isfinite(h)) return Error("gptq: the Hessian holds a non-finite value");
      if (i == j) h = (h == 0 ? 1.0 : h) + damp * mean_diag;  // a dead channel (never active) gets diag 1
      A[static_cast<size_t>(i * n + j)] = h;
    }
  // Cholesky, in place (lower): A = L L^T, right-looking: column j is finished, then the trailing lower
  // triangle loses its outer product (contiguous row updates, split over the pool).
  std::vector<double> col(N);
  for (int64_t j = 0; j < n; ++j) {
    const double d = A[static_cast<size_t>(j * n + j)];
    if (!(d > 0) || !std::isfinite(d))
      return Error("gptq: the damped Hessian is not positive definite (column " + std::to_string(n - 1 - j) +
                   "); raise the damping");
    const double ljj = std::sqrt(d);
    A[static_cast<size_t>(j * n + j)] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      A[static_cast<size_t>(i * n + j)] /= ljj;
      col[static_cast<size_t>(i)] = A[static_cast<size_t>(i * n + j)];
    }
    auto update = [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = j + 1 + i0; i < j + 1 + i1; ++i) {
        const double ci = col[static_cast<size_t>(i)];
        if (ci == 0) continue;
        double* Ai = &A[static_cast<size_t>(i * n)];
        for (int64_t k = j + 1; k <= i; ++k) Ai[k] -= ci * col[static_cast<size_t>(k)];
      }
    };
    const int64_t rest = n - 1 - j;
    if (pool && rest > 256)
      pool->parallel_for(rest, update);
    else
      update(0, rest, 0);
  }
  // M = L^-1 (lower), row by row: M_i = (e_i - sum_{k<i} L_ik M_k) / L_ii (contiguous row updates).
  std::vector<double> M(N * N, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double* Mi = &M[static_cast<size_t>(i * n)];
    const double* Ai = &A[static_cast<size_t>(i * n)];
    Mi[i] = 1.0;
    for (int64_t k = 0; k < i; ++k) {
      const double l = Ai[k];
      if (l == 0) continue;
      const double* Mk = &M[static_cast<size_t>(k * n)];
      for (int64_t c = 0; c <= k; ++c) Mi[c] -= l * Mk[c];
    }
    const double inv = 1.0 / Ai[i];
    for (int64_t c = 0; c <= i; ++c) Mi[c] *= inv;
  }
  // U = J M J: U[i][j] = M[n-1-i][n-1-j], upper triangular.
  std::vector<float> U(N * N, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j)
      U[static_cast<size_t>(i * n + j)] = static_cast<float>(M[static_cast<size_t>((n - 1 - i) * n + (n - 1 - j))]);
  return U;
}

Status gptq_quantize(GgmlType type, const float* W, int64_t rows, int64_t n, const float* U, const float* importance,
                     const GptqOptions& o, void* out, ThreadPool* pool) {
  const TypeTraits& tt = type_traits(type);
  if (!has_block_grid(type)) return Error("gptq: type " + std::string(tt.name) + " has no uniform grid to round onto");
  const int B = static_cast<int>(tt.block_size);
  if (n % B != 0)
    return Error("gptq: rows of " + std::to_string(n) + " values are not whole " + std::string(tt.name) + " blocks");
  for (int64_t i = 0; i < rows * n; ++i)
    if (!std::isfinite(W[i]))
      return Error("gptq: row " + std::to_string(i / n) + ", column " + std::to_string(i % n) +
                   " is not finite (only finite values can be quantized)");
  const int64_t lazy = std::max<int64_t>(B, (o.lazy_block + B - 1) / B * B);
  const size_t rs = row_size(type, n), bs = tt.type_size;
  auto work = [&](int64_t r0, int64_t r1, int) {
    std::vector<float> w(static_cast<size_t>(n));
    std::vector<float> err(static_cast<size_t>(lazy));
    std::vector<float> blockx(static_cast<size_t>(B));
    std::vector<int> L(static_cast<size_t>(B));
    BlockGrid grid;
    for (int64_t r = r0; r < r1; ++r) {
      std::copy(W + r * n, W + (r + 1) * n, w.begin());
      uint8_t* orow = static_cast<uint8_t*>(out) + static_cast<size_t>(r) * rs;
      for (int64_t i1 = 0; i1 < n; i1 += lazy) {
        const int64_t i2 = std::min(n, i1 + lazy);
        for (int64_t i = i1; i < i2; ++i) {
          const int64_t b = i / B, j = i % B;
          void* blk = orow + static_cast<size_t>(b) * bs;
          if (j == 0) {  // the block's scales, from the weights as they are now
            quantize_row(type, w.data() + i, blk, B, importance ? importance + i : nullptr, o.search);
            block_grid(type, blk, grid);
          }
          const int q = grid.nearest(static_cast<int>(j), w[static_cast<size_t>(i)]);
          L[static_cast<size_t>(j)] = q;
          const float e = (w[static_cast<size_t>(i)] - grid.value(static_cast<int>(j), q)) / U[i * n + i];
          err[static_cast<size_t>(i - i1)] = e;
          const float* Ui = U + i * n;
          for (int64_t k = i + 1; k < i2; ++k) w[static_cast<size_t>(k)] -= e * Ui[k];
          if (j == B - 1) pack_block_quants(type, blk, L.data());
        }
        // The block's feedback into the columns after it.
        for (int64_t i = i1; i < i2; ++i) {
          const float e = err[static_cast<size_t>(i - i1)];
          if (e == 0.0f) continue;
          const float* Ui = U + i * n;
          for (int64_t k = i2; k < n; ++k) w[static_cast<size_t>(k)] -= e * Ui[k];
        }
      }
    }
  };
  if (pool && rows > 1)
    pool->parallel_for(rows, work);
  else
    work(0, rows, 0);
  return Status::Ok();
}

double layer_output_error(const float* W, const float* W_hat, int64_t rows, int64_t n, const float* H) {
  double total = 0;
  std::vector<double> e(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) e[static_cast<size_t>(j)] = static_cast<double>(W[r * n + j]) - W_hat[r * n + j];
    for (int64_t i = 0; i < n; ++i) {
      if (e[static_cast<size_t>(i)] == 0) continue;
      double s = 0;
      const float* Hi = H + i * n;
      for (int64_t j = 0; j < n; ++j) s += Hi[j] * e[static_cast<size_t>(j)];
      total += e[static_cast<size_t>(i)] * s;
    }
  }
  return total;
}

}  // namespace pocketlm
