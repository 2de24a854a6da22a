// GPTQ (quant/methods/gptq.h) and the block grids it rounds onto (formats/block_grid.h): the grid of every
// uniform type reproduces its encoder's blocks; the Cholesky-factored, lazy-block GPTQ equals a direct
// implementation of the paper's update (full inverse Hessian, eliminated one column at a time) on a matrix with
// a known Hessian; and GPTQ's layer output error ||(W - W_hat) X|| beats the importance-weighted encoder's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <vector>

#include "formats/block_grid.h"
#include "formats/dequantize.h"
#include "formats/quantize.h"
#include "quant/methods/gptq.h"
#include "util/splitmix64.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

double gauss(SplitMix64& rng) {
  const double u1 = std::max(rng.uniform(), 1e-12), u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// T tokens of n correlated channels (x = A z, a few large channels), and H = X^T X.
std::vector<float> correlated_gram(int64_t n, int64_t T, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<double> A(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      A[static_cast<size_t>(i * n + j)] = (i == j ? 1.0 : 0.0) + 0.3 * gauss(rng) / std::sqrt(static_cast<double>(n));
  std::vector<double> x(static_cast<size_t>(n)), z(static_cast<size_t>(n));
  std::vector<double> H(static_cast<size_t>(n * n), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    for (auto& v : z) v = gauss(rng);
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += A[static_cast<size_t>(i * n + j)] * z[static_cast<size_t>(j)];
      x[static_cast<size_t>(i)] = s * (i % 7 == 0 ? 4.0 : 1.0);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        H[static_cast<size_t>(i * n + j)] += x[static_cast<size_t>(i)] * x[static_cast<size_t>(j)];
  }
  return std::vector<float>(H.begin(), H.end());
}

std::vector<float> gaussian(int64_t count, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = static_cast<float>(gauss(rng));
  return v;
}

std::vector<float> decode(GgmlType type, const std::vector<uint8_t>& q, int64_t rows, int64_t n) {
  std::vector<float> y(static_cast<size_t>(rows * n));
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(type, q.data() + static_cast<size_t>(r) * row_size(type, n), y.data() + r * n, n);
  return y;
}

// The paper's direct form: the inverse Hessian in full, each quantized column's error spread over the rest
// with its row of H^-1, then that column eliminated from H^-1 (Gaussian elimination). No Cholesky, no lazy
// blocks. Block scales are chosen as gptq_quantize chooses them: the encoder on the updated weights.
std::vector<float> reference_gptq(GgmlType type, const std::vector<float>& W, int64_t rows, int64_t n,
                                  const std::vector<float>& H, double damp) {
  const auto N = static_cast<size_t>(n);
  std::vector<double> A(N * N), inv(N * N, 0.0);
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += H[static_cast<size_t>(i * n + i)];
  mean /= static_cast<double>(n);
  for (size_t i = 0; i < N * N; ++i) A[i] = H[i];
  for (size_t i = 0; i < N; ++i) A[i * N + i] += damp * mean, inv[i * N + i] = 1.0;
  for (size_t c = 0; c < N; ++c) {  // Gauss-Jordan (A is positive definite: no pivoting needed)
    const double p = A[c * N + c];
    for (size_t j = 0; j < N; ++j) A[c * N + j] /= p, inv[c * N + j] /= p;
    for (size_t r = 0; r < N; ++r) {
      if (r == c) continue;
      const double f = A[r * N + c];
      for (size_t j = 0; j < N; ++j) A[r * N + j] -= f * A[c * N + j], inv[r * N + j] -= f * inv[c * N + j];
    }
  }
  std::vector<float> imp(N);
  for (size_t i = 0; i < N; ++i) imp[i] = H[i * N + i];
  const int B = static_cast<int>(type_traits(type).block_size);
  std::vector<float> out(W.size());
  std::vector<uint8_t> blk(type_traits(type).type_size);
  BlockGrid g;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> w(W.begin() + r * n, W.begin() + (r + 1) * n);
    std::vector<double> Hi = inv;
    for (size_t i = 0; i < N; ++i) {
      if (i % B == 0) {
        std::vector<float> xb(w.begin() + static_cast<int64_t>(i), w.begin() + static_cast<int64_t>(i) + B);
        quantize_row(type, xb.data(), blk.data(), B, imp.data() + i);
        block_grid(type, blk.data(), g);
      }
      const int j = static_cast<int>(i % B);
      const double q = g.value(j, g.nearest(j, static_cast<float>(w[i])));
      out[static_cast<size_t>(r) * N + i] = static_cast<float>(q);
      const double e = (w[i] - q) / Hi[i * N + i];
      for (size_t k = i + 1; k < N; ++k) w[k] -= e * Hi[i * N + k];
      const double d = Hi[i * N + i];
      std::vector<double> col(N), row(N);
      for (size_t k = 0; k < N; ++k) col[k] = Hi[k * N + i], row[k] = Hi[i * N + k];
      for (size_t a = 0; a < N; ++a)
        for (size_t b = 0; b < N; ++b) Hi[a * N + b] -= col[a] * row[b] / d;
    }
  }
  return out;
}

TEST(BlockGrid, RepacksEveryUniformTypesOwnBlocksUnchanged) {
  const std::vector<float> x = gaussian(512, 3);
  for (GgmlType t :
       {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_0_G64,
        GgmlType::Q4_0_G128, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    SCOPED_TRACE(type_traits(t).name);
    ASSERT_TRUE(has_block_grid(t));
    const int64_t B = type_traits(t).block_size;
    std::vector<uint8_t> q(row_size(t, 512));
    ASSERT_TRUE(quantize_rows(t, x.data(), q.data(), 1, 512, nullptr, nullptr).ok());
    std::vector<float> y(512);
    dequantize_row(t, q.data(), y.data(), 512);
    std::vector<uint8_t> again = q;
    BlockGrid g;
    for (int64_t b = 0; b < 512 / B; ++b) {
      uint8_t* blk = again.data() + static_cast<size_t>(b) * type_traits(t).type_size;
      block_grid(t, blk, g);
      ASSERT_EQ(g.n, B);
      std::vector<int> L(static_cast<size_t>(B));
      for (int j = 0; j < B; ++j) {
        L[static_cast<size_t>(j)] = g.nearest(j, y[static_cast<size_t>(b * B + j)]);
        ASSERT_EQ(g.value(j, L[static_cast<size_t>(j)]), y[static_cast<size_t>(b * B + j)]) << "element " << b * B + j;
      }
      std::memset(blk + (t == GgmlType::Q6_K ? 0 : type_traits(t).type_size / 2), 0, 1);  // disturb a quant byte
      pack_block_quants(t, blk, L.data());
    }
    std::vector<float> z(512);
    dequantize_row(t, again.data(), z.data(), 512);
    EXPECT_EQ(y, z);
  }
  EXPECT_FALSE(has_block_grid(GgmlType::IQ4_NL));
}

TEST(Gptq, MatchesTheDirectInverseHessianFormOnAKnownHessian) {
  for (auto [type, n, rows] :
       {std::tuple{GgmlType::Q4_0, int64_t{64}, int64_t{12}}, std::tuple{GgmlType::Q4_K, int64_t{256}, int64_t{3}},
        std::tuple{GgmlType::Q3_K, int64_t{256}, int64_t{2}}}) {
    SCOPED_TRACE(type_traits(type).name);
    const std::vector<float> H = correlated_gram(n, 2 * n, 11);
    const std::vector<float> W = gaussian(rows * n, 5);
    auto U = gptq_inverse_factor(H.data(), n, 0.01);
    ASSERT_TRUE(U.ok()) << U.error().message();
    std::vector<float> imp(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) imp[static_cast<size_t>(i)] = H[static_cast<size_t>(i * n + i)];
    std::vector<uint8_t> q(row_size(type, n) * static_cast<size_t>(rows));
    GptqOptions o;
    o.lazy_block = 64;  // several lazy blocks per row for q4_0
    ASSERT_TRUE(gptq_quantize(type, W.data(), rows, n, U->data(), imp.data(), o, q.data(), nullptr).ok());
    const std::vector<float> ours = decode(type, q, rows, n);
    const std::vector<float> ref = reference_gptq(type, W, rows, n, H, 0.01);
    int64_t same = 0;
    for (size_t i = 0; i < ours.size(); ++i) same += ours[i] == ref[i] ? 1 : 0;
    EXPECT_GE(static_cast<double>(same), 0.99 * static_cast<double>(ours.size()));
    const double e_ours = layer_output_error(W.data(), ours.data(), rows, n, H.data());
    const double e_ref = layer_output_error(W.data(), ref.data(), rows, n, H.data());
    EXPECT_NEAR(e_ours, e_ref, 0.01 * e_ref);
  }
}

TEST(Gptq, LayerOutputErrorBeatsTheImportanceWeightedSearch) {
  ThreadPool pool(2);
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q2_K}) {
    SCOPED_TRACE(type_traits(type).name);
    const int64_t n = 256, rows = 48;
    const std::vector<float> H = correlated_gram(n, 512, 21);
    const std::vector<float> W = gaussian(rows * n, 9);
    std::vector<float> imp(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) imp[static_cast<size_t>(i)] = H[static_cast<size_t>(i * n + i)];
    std::vector<uint8_t> rtn(row_size(type, n) * rows), gq(rtn.size());
    ASSERT_TRUE(quantize_rows(type, W.data(), rtn.data(), rows, n, imp.data(), &pool).ok());
    auto U = gptq_inverse_factor(H.data(), n, 0.01);
    ASSERT_TRUE(U.ok());
    ASSERT_TRUE(gptq_quantize(type, W.data(), rows, n, U->data(), imp.data(), {}, gq.data(), &pool).ok());
    const double e_rtn = layer_output_error(W.data(), decode(type, rtn, rows, n).data(), rows, n, H.data());
    const double e_gptq = layer_output_error(W.data(), decode(type, gq, rows, n).data(), rows, n, H.data());
    EXPECT_LT(e_gptq, 0.9 * e_rtn) << "gptq " << e_gptq << " vs importance-weighted search " << e_rtn;
  }
}

TEST(Gptq, RejectsNonFiniteWeightsAndTypesWithoutAGrid) {
  const int64_t n = 32;
  const std::vector<float> H = correlated_gram(n, 64, 1);
  auto U = gptq_inverse_factor(H.data(), n, 0.01);
  ASSERT_TRUE(U.ok());
  std::vector<float> W = gaussian(2 * n, 2);
  W[40] = std::nanf("");
  std::vector<uint8_t> q(row_size(GgmlType::Q4_0, n) * 2);
  auto st = gptq_quantize(GgmlType::Q4_0, W.data(), 2, n, U->data(), nullptr, {}, q.data(), nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("row 1, column 8"), std::string::npos) << st.error().message();
  W[40] = 0;
  st = gptq_quantize(GgmlType::IQ4_NL, W.data(), 2, n, U->data(), nullptr, {}, q.data(), nullptr);
  ASSERT_FALSE(st.ok());
  std::vector<float> bad = H;
  bad[0] = -1;
  EXPECT_FALSE(gptq_inverse_factor(bad.data(), n, 0.01).ok());
}

}  // namespace
}  // namespace pocketlm
