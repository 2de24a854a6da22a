// The quantized KV cache rows (formats/kv_types.h, kernels/ref/kv_rows.h): the byte layout, the quantizers'
// round-trip bounds, the scalar K . Q against a double dot of the dequantized rows, every runnable SIMD path
// against the scalar reference (kernel_conformance.h check_kv_rows), dispatch, and the error of a whole
// attention (K . Q, softmax, P . V) with q8 (and q4) K/V rows against f32 K/V, within a derived bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/float.h"
#include "kernels/dispatch.h"
#include "kernels/kernel_conformance.h"
#include "kernels/ref/kv_rows.h"

namespace pocketlm::kernels {
namespace {

float row_scale(const uint8_t* row) {
  uint16_t h;
  std::memcpy(&h, row, 2);
  return fp16_to_fp32(h);
}

std::vector<float> random_row(int64_t n, float sigma, std::mt19937& rng, bool outlier) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  if (outlier) x[static_cast<size_t>(n / 3)] = -20.0f * sigma;  // one value far from the rest
  return x;
}

TEST(KvRows, RowBytesAndQ4Layout) {
  EXPECT_EQ(kv_row_bytes(KvType::Q8, 128), 130u);
  EXPECT_EQ(kv_row_bytes(KvType::Q4, 128), 66u);
  // m = -8 (first value of largest magnitude) -> d = 1; values j and j + 16 of each 32-group share byte j.
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[static_cast<size_t>(i)] = static_cast<float>((i * 5 + i / 32) % 16 - 8);
  x[0] = -8.0f;
  std::vector<uint8_t> row(kv_row_bytes(KvType::Q4, 64));
  ref::quantize_kv_row(KvType::Q4, x.data(), row.data(), 64);
  EXPECT_EQ(row_scale(row.data()), 1.0f);
  for (int g = 0; g < 2; ++g)
    for (int j = 0; j < 16; ++j) {
      const int lo = static_cast<int>(x[static_cast<size_t>(32 * g + j)]) + 8;
      const int hi = static_cast<int>(x[static_cast<size_t>(32 * g + j + 16)]) + 8;
      EXPECT_EQ(row[static_cast<size_t>(2 + 16 * g + j)], lo | hi << 4) << "group " << g << " byte " << j;
    }
  std::vector<float> back(64);
  ref::dequantize_kv_row(KvType::Q4, row.data(), back.data(), 64);
  EXPECT_EQ(back, x);
  // q8: d = amax / 127 as f16, quants in order after it.
  std::vector<float> y = {127.0f, -63.5f, 1.0f, -1.49f, 0.5f, 0.0f, -127.0f, 64.0f};
  std::vector<uint8_t> r8(kv_row_bytes(KvType::Q8, 8));
  ref::quantize_kv_row(KvType::Q8, y.data(), r8.data(), 8);
  EXPECT_EQ(row_scale(r8.data()), 1.0f);
  const int8_t want[8] = {127, -64, 1, -1, 1, 0, -127, 64};  // halves away from zero
  for (int i = 0; i < 8; ++i) EXPECT_EQ(static_cast<int8_t>(r8[static_cast<size_t>(2 + i)]), want[i]) << i;
}

// q8: |x - d q| <= d / 2 up to the rounding of x / d and d * q (a few ulp of |x|), with d = f16(amax / 127).
TEST(KvRows, Q8RoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  for (int64_t hd : {64, 128, 256}) {
    for (float sigma : {0.05f, 1.0f, 30.0f, 2000.0f}) {
      for (bool outlier : {false, true}) {
        const std::vector<float> x = random_row(hd, sigma, rng, outlier);
        std::vector<uint8_t> row(kv_row_bytes(KvType::Q8, hd));
        ref::quantize_kv_row(KvType::Q8, x.data(), row.data(), hd);
        std::vector<float> back(static_cast<size_t>(hd));
        ref::dequantize_kv_row(KvType::Q8, row.data(), back.data(), hd);
        float amax = 0;
        for (float v : x) amax = std::max(amax, std::fabs(v));
        const float d = row_scale(row.data());
        EXPECT_EQ(d, fp16_to_fp32(fp32_to_fp16(amax / 127.0f)));
        int qmax = 0;
        for (int64_t i = 0; i < hd; ++i) {
          const double err = std::fabs(static_cast<double>(x[static_cast<size_t>(i)]) - back[static_cast<size_t>(i)]);
          EXPECT_LE(err, d / 2.0 + 4e-7 * std::fabs(x[static_cast<size_t>(i)]))
              << "hd " << hd << " sigma " << sigma << " i " << i;
          qmax = std::max(qmax, std::abs(static_cast<int>(static_cast<int8_t>(row[static_cast<size_t>(2 + i)]))));
        }
        EXPECT_GE(qmax, 126);  // the scale uses the range
        EXPECT_LE(qmax, 127);
      }
    }
  }
}

// q4: values whose x / d lies in [-8.5, 7.5] are within |d| / 2; m itself is exact (nibble 0); values of m's
// opposite sign beyond 7.5 |d| clamp to nibble 15 and are within |d| (+ rounding of d to f16).
TEST(KvRows, Q4RoundTripWithinHalfAStepInRange) {
  std::mt19937 rng(8);
  int clamped = 0;
  for (int64_t hd : {64, 128, 256}) {
    for (float sigma : {0.05f, 1.0f, 30.0f}) {
      for (bool outlier : {false, true}) {
        const std::vector<float> x = random_row(hd, sigma, rng, outlier);
        std::vector<uint8_t> row(kv_row_bytes(KvType::Q4, hd));
        ref::quantize_kv_row(KvType::Q4, x.data(), row.data(), hd);
        std::vector<float> back(static_cast<size_t>(hd));
        ref::dequantize_kv_row(KvType::Q4, row.data(), back.data(), hd);
        float m = 0;
        for (float v : x)
          if (std::fabs(v) > std::fabs(m)) m = v;
        const float d = row_scale(row.data());
        EXPECT_EQ(d, fp16_to_fp32(fp32_to_fp16(m / -8.0f)));
        const double ad = std::fabs(d);
        for (int64_t i = 0; i < hd; ++i) {
          const float xi = x[static_cast<size_t>(i)];
          const double err = std::fabs(static_cast<double>(xi) - back[static_cast<size_t>(i)]);
          const double t = static_cast<double>(xi) / d;
          if (t >= -8.5 && t <= 7.5) {
            EXPECT_LE(err, ad / 2.0 + 4e-7 * std::fabs(xi)) << "hd " << hd << " sigma " << sigma << " i " << i;
          } else {
            ++clamped;
            EXPECT_LE(err, ad * (1.0 + 2e-3)) << "clamped value, hd " << hd << " i " << i;
          }
        }
      }
    }
  }
  EXPECT_GT(clamped, 0);  // the clamped branch was exercised
}

TEST(KvRows, ZeroAndTinyAndHugeRows) {
  for (KvType t : {KvType::Q8, KvType::Q4}) {
    for (float v : {0.0f, 1e-30f, 1e9f}) {
      std::vector<float> x(64, v);
      x[5] = -v;
      std::vector<uint8_t> row(kv_row_bytes(t, 64));
      ref::quantize_kv_row(t, x.data(), row.data(), 64);
      std::vector<float> back(64);
      ref::dequantize_kv_row(t, row.data(), back.data(), 64);
      for (size_t i = 0; i < back.size(); ++i) {
        ASSERT_TRUE(std::isfinite(back[i])) << kv_type_name(t) << " v=" << v;
        if (v < 1.0f) {
          EXPECT_LE(std::fabs(back[i] - x[i]), 1e-29f) << kv_type_name(t);  // tiny rows round to ~0
        }
      }
      if (v > 1.0f) {
        EXPECT_EQ(std::fabs(row_scale(row.data())), 65504.0f);  // the scale saturates, no Inf
      }
    }
  }
}

// The scalar K . Q is the dot of the dequantized rows: float(exact integer dot) * d_k * d_q.
TEST(KvRows, ScalarScoresAreTheDequantizedDot) {
  std::mt19937 rng(9);
  for (KvRow kr : {kKvRowQ8, kKvRowQ4}) {
    const KvType t = kr == kKvRowQ8 ? KvType::Q8 : KvType::Q4;
    for (int64_t hd : {64, 128, 256}) {
      const int64_t rows = 9, cols = 3;
      const size_t ks = kv_row_bytes(t, hd), qs = kv_row_bytes(KvType::Q8, hd);
      std::vector<uint8_t> k(ks * rows), q(qs * cols);
      std::vector<float> kf(static_cast<size_t>(hd * rows)), qf(static_cast<size_t>(hd * cols));
      for (int64_t r = 0; r < rows; ++r) {
        const auto x = random_row(hd, 1.0f, rng, r % 2 == 0);
        ref::quantize_kv_row(t, x.data(), k.data() + r * ks, hd);
        ref::dequantize_kv_row(t, k.data() + r * ks, kf.data() + r * hd, hd);
      }
      for (int64_t c = 0; c < cols; ++c) {
        const auto x = random_row(hd, 3.0f, rng, false);
        ref::quantize_kv_row(KvType::Q8, x.data(), q.data() + c * qs, hd);
        ref::dequantize_kv_row(KvType::Q8, q.data() + c * qs, qf.data() + c * hd, hd);
      }
      std::vector<float> out(static_cast<size_t>(rows * cols));
      scalar_table()->kv_gemm[kr](hd, k.data(), ks, rows, q.data(), qs, cols, out.data(), rows);
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t r = 0; r < rows; ++r) {
          double dot = 0, mag = 0;
          for (int64_t i = 0; i < hd; ++i) {
            dot += static_cast<double>(kf[static_cast<size_t>(r * hd + i)]) * qf[static_cast<size_t>(c * hd + i)];
            mag += std::fabs(static_cast<double>(kf[static_cast<size_t>(r * hd + i)]) *
                             qf[static_cast<size_t>(c * hd + i)]);
          }
          // Dequantized values carry one rounding each (d * q); the score two (float(isum) * d_k * d_q).
          EXPECT_NEAR(out[static_cast<size_t>(c * rows + r)], dot, 1e-6 * mag + 1e-30)
              << kv_type_name(t) << " hd " << hd << " (" << r << ", " << c << ")";
          EXPECT_EQ(out[static_cast<size_t>(c * rows + r)],
                    static_cast<float>(ref::kv_row_dot(kr, hd, k.data() + r * ks, q.data() + c * qs)) *
                        row_scale(k.data() + r * ks) * row_scale(q.data() + c * qs));
        }
    }
  }
}

TEST(KvRows, EveryRunnablePathMatchesTheScalarReference) {
  int paths = 0;
  for (const KernelTable* t : runnable_tables()) {
    if (std::string(t->name) == "scalar") continue;
    ++paths;
    ASSERT_NE(t->kv_gemm[kKvRowQ8], nullptr) << t->name;
    ASSERT_NE(t->kv_gemm[kKvRowQ4], nullptr) << t->name;
    ASSERT_NE(t->kv_weighted_rows[kKvRowQ8], nullptr) << t->name;
    ASSERT_NE(t->kv_weighted_rows[kKvRowQ4], nullptr) << t->name;
    for (unsigned seed : {1u, 2u}) {
      const testing::ConformanceReport rep = testing::check_kv_rows(*t, seed);
      EXPECT_GT(rep.checks, 5000) << t->name;
      for (const auto& f : rep.failures) ADD_FAILURE() << f;
    }
  }
  if (paths == 0) GTEST_SKIP() << "this CPU runs no SIMD path (scalar only)";
}

TEST(KvRows, DispatchGivesTheActivePathsKernels) {
  const KernelTable& a = active_table();
  EXPECT_EQ(kv_gemm_for(KvType::Q8), a.kv_gemm[kKvRowQ8] ? a.kv_gemm[kKvRowQ8] : scalar_table()->kv_gemm[kKvRowQ8]);
  EXPECT_EQ(kv_gemm_for(KvType::Q4), a.kv_gemm[kKvRowQ4] ? a.kv_gemm[kKvRowQ4] : scalar_table()->kv_gemm[kKvRowQ4]);
  EXPECT_NE(kv_weighted_rows_for(KvType::Q8), nullptr);
  EXPECT_NE(kv_weighted_rows_for(KvType::Q4), nullptr);
  EXPECT_EQ(kv_gemm_for(KvType::F16), nullptr);
  EXPECT_EQ(kv_weighted_rows_for(KvType::F32), nullptr);
  std::mt19937 rng(3);
  const auto x = random_row(128, 1.0f, rng, true);
  for (KvType t : {KvType::Q8, KvType::Q4}) {
    std::vector<uint8_t> got(kv_row_bytes(t, 128)), want(got.size());
    quantize_kv_row(t, x.data(), got.data(), 128);
    ref::quantize_kv_row(t, x.data(), want.data(), 128);
    EXPECT_EQ(got, want) << kv_type_name(t);
  }
}

// ---------------------------------------------------------------- attention error against f32 K/V
// One KV head with a GQA group of G query heads and T query tokens (causal: token t sees the first
// n_kv - T + t + 1 cached rows), head_dim hd, scale 1/sqrt(hd). Reference: double-precision attention over the
// f32 Q/K/V. Quantized: queries as q8 rows and K rows of the KV type through the active path's kv_gemm, a
// softmax, V rows of the KV type through its kv_weighted_rows. Every output value o_i of every query is
// checked against two bounds, both computed from the inputs and the stored scales, never from the result:
//
// 1. Worst case (rigorous, loose). With q^ = q + e_q and k^ = k + e_k, q^.k^ - q.k = q^.e_k + e_q.k, so score j
//    moves by at most delta_j = scale (|q^|_1 E_kj + |k_j|_1 E_q), E a row's largest quantization error (d/2
//    for q8, KvRows.Q8RoundTripWithinHalfAStep; |d| for q4, whose clamped values reach it). Scores moved by at
//    most D = max delta_j change each probability by a factor within [e^-2D, e^2D], so with
//    o^_i - o_i = sum_j (p^_j - p_j) v_ji + sum_j p^_j (v^_ji - v_ji):
//        |o^_i - o_i| <= (e^2D - 1) sum_j p_j |v_ji| + sum_j p^_j E_vj.
//    It assumes every error aligned; it holds on any data but is ~30x the errors seen.
// 2. Statistical (tight; the one a kernel bug breaks). Round-to-nearest errors of continuous data behave as
//    independent uniform variables on [-d/2, d/2], variance d^2/12. To first order in delta,
//    p^_j - p_j = p_j (delta_j - sum_k p_k delta_k), and sum_j (p^_j - p_j) v_ji = sum_j p_j delta_j (v_ji - o_i).
//    The e_k terms are independent across rows; the e_q term is shared: e_q . w_i with
//    w_i = sum_j p_j k_j (v_ji - o_i). So the error has standard deviation
//        sigma_i^2 = scale^2 (|q^|_2^2 sum_j p_j^2 (v_ji - o_i)^2 d_kj^2 / 12 + |w_i|_2^2 d_q^2 / 12)
//                    + sum_j p^_j^2 d_vj^2 / 12
//    and must stay within 6 sigma_i (q8; about 1 in 5e8 per value for a Gaussian; the test checks ~6,000
//    values). q4 rows carry a few clamped values per row (error up to |d|, not d/2): 8 sigma_i there.
// Both add a float-rounding slack of 1e-5 (1 + sum_j p^_j |v^_ji|), far below the quantization terms.
struct AttentionError {
  double max_err = 0, max_ratio_worst = 0, max_sigmas = 0, mean_abs_out = 0, mean_sigma = 0;
};

AttentionError attention_error(KvType t, int64_t hd, int64_t n_kv, int64_t T, int64_t G, unsigned seed,
                               double n_sigmas) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t rb = kv_row_bytes(t, hd), qb = kv_row_bytes(KvType::Q8, hd);
  const auto n = static_cast<size_t>(hd);
  const auto at = [hd](int64_t row, int64_t i) { return static_cast<size_t>(row * hd + i); };
  std::vector<float> K(n * static_cast<size_t>(n_kv)), V(K.size()), Q(n * static_cast<size_t>(T * G));
  // K with a few large channels (as RoPE'd keys have), V and the queries plain normal.
  for (int64_t j = 0; j < n_kv; ++j)
    for (int64_t i = 0; i < hd; ++i) K[at(j, i)] = normal(rng) * (i % 16 == 3 ? 4.0f : 1.0f);
  for (auto& v : V) v = normal(rng);
  for (auto& v : Q) v = normal(rng);
  std::vector<uint8_t> Kq(rb * static_cast<size_t>(n_kv)), Vq(Kq.size()), Qq(qb * static_cast<size_t>(T * G));
  std::vector<float> Vhat(V.size());
  for (int64_t j = 0; j < n_kv; ++j) {
    quantize_kv_row(t, &K[at(j, 0)], Kq.data() + j * rb, hd);
    quantize_kv_row(t, &V[at(j, 0)], Vq.data() + j * rb, hd);
    ref::dequantize_kv_row(t, Vq.data() + j * rb, &Vhat[at(j, 0)], hd);
  }
  for (int64_t c = 0; c < T * G; ++c) quantize_kv_row(KvType::Q8, &Q[at(c, 0)], Qq.data() + c * qb, hd);
  auto scale_of = [](const uint8_t* row) { return std::fabs(static_cast<double>(row_scale(row))); };
  auto max_err = [t](double d) { return t == KvType::Q8 ? d / 2 : d; };
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  std::vector<float> scores(static_cast<size_t>(n_kv * T * G));
  kv_gemm_for(t)(hd, Kq.data(), rb, n_kv, Qq.data(), qb, T * G, scores.data(), n_kv);
  std::vector<float> P(scores.size(), 0.0f), out(n * static_cast<size_t>(T * G), 0.0f);
  struct Query {
    std::vector<double> p, ph;
    double D = 0, dq = 0, q1 = 0, q2 = 0;
  };
  std::vector<Query> qs(static_cast<size_t>(T * G));
  auto softmax = [](std::vector<double>& v) {
    const double mx = *std::max_element(v.begin(), v.end());
    double sum = 0;
    for (double& x : v) sum += (x = std::exp(x - mx));
    for (double& x : v) x /= sum;
  };
  for (int64_t c = 0; c < T * G; ++c) {
    Query& qu = qs[static_cast<size_t>(c)];
    const int64_t visible = n_kv - T + c / G + 1;
    std::vector<float> qhat(n);
    ref::dequantize_kv_row(KvType::Q8, Qq.data() + c * qb, qhat.data(), hd);
    for (float v : qhat) {
      qu.q1 += std::fabs(v);
      qu.q2 += static_cast<double>(v) * v;
    }
    qu.dq = scale_of(Qq.data() + c * qb);
    qu.p.resize(static_cast<size_t>(visible));
    qu.ph.resize(qu.p.size());
    for (int64_t j = 0; j < visible; ++j) {
      double dot = 0, k1 = 0;
      for (int64_t i = 0; i < hd; ++i) {
        dot += static_cast<double>(Q[at(c, i)]) * K[at(j, i)];
        k1 += std::fabs(K[at(j, i)]);
      }
      qu.p[static_cast<size_t>(j)] = dot * scale;
      qu.ph[static_cast<size_t>(j)] = static_cast<double>(scores[static_cast<size_t>(c * n_kv + j)]) * scale;
      qu.D = std::max(qu.D, scale * (qu.q1 * max_err(scale_of(Kq.data() + j * rb)) + k1 * max_err(qu.dq)));
    }
    softmax(qu.p);
    softmax(qu.ph);
    for (int64_t j = 0; j < visible; ++j)
      P[static_cast<size_t>(c * n_kv + j)] = static_cast<float>(qu.ph[static_cast<size_t>(j)]);
  }
  kv_weighted_rows_for(t)(n_kv, hd, Vq.data(), rb, P.data(), static_cast<size_t>(n_kv), T * G, out.data(), n);

  AttentionError e;
  const double count = static_cast<double>(hd * T * G);
  for (int64_t c = 0; c < T * G; ++c) {
    const Query& qu = qs[static_cast<size_t>(c)];
    const auto visible = static_cast<int64_t>(qu.p.size());
    std::vector<double> o(n, 0.0);
    for (int64_t j = 0; j < visible; ++j)
      for (int64_t i = 0; i < hd; ++i) o[static_cast<size_t>(i)] += qu.p[static_cast<size_t>(j)] * V[at(j, i)];
    // w_i = sum_j p_j k_j (v_ji - o_i), one hd-vector per output value i.
    std::vector<double> w(n * n, 0.0);
    for (int64_t j = 0; j < visible; ++j)
      for (int64_t i = 0; i < hd; ++i) {
        const double f = qu.p[static_cast<size_t>(j)] * (V[at(j, i)] - o[static_cast<size_t>(i)]);
        for (int64_t l = 0; l < hd; ++l) w[static_cast<size_t>(i) * n + static_cast<size_t>(l)] += f * K[at(j, l)];
      }
    for (int64_t i = 0; i < hd; ++i) {
      double pv = 0, pe = 0, slack = 1, var_k = 0, var_v = 0, w2 = 0;
      for (int64_t j = 0; j < visible; ++j) {
        const double p = qu.p[static_cast<size_t>(j)], ph = qu.ph[static_cast<size_t>(j)];
        const double dv = scale_of(Vq.data() + j * rb), dk = scale_of(Kq.data() + j * rb);
        const double v = V[at(j, i)];
        pv += p * std::fabs(v);
        pe += ph * max_err(dv);
        slack += ph * std::fabs(Vhat[at(j, i)]);
        var_k += p * p * (v - o[static_cast<size_t>(i)]) * (v - o[static_cast<size_t>(i)]) * dk * dk / 12;
        var_v += ph * ph * dv * dv / 12;
      }
      for (int64_t l = 0; l < hd; ++l)
        w2 += w[static_cast<size_t>(i) * n + static_cast<size_t>(l)] *
              w[static_cast<size_t>(i) * n + static_cast<size_t>(l)];
      const double sigma = std::sqrt(scale * scale * (qu.q2 * var_k + w2 * qu.dq * qu.dq / 12) + var_v);
      const double worst = std::expm1(2 * qu.D) * pv + pe + 1e-5 * slack;
      const double err = std::fabs(out[static_cast<size_t>(c * hd + i)] - o[static_cast<size_t>(i)]);
      EXPECT_LE(err, worst) << kv_type_name(t) << " hd " << hd << " query " << c << " value " << i;
      EXPECT_LE(err, n_sigmas * sigma + 1e-5 * slack)
          << kv_type_name(t) << " hd " << hd << " query " << c << " value " << i << " sigma " << sigma;
      e.max_err = std::max(e.max_err, err);
      e.max_ratio_worst = std::max(e.max_ratio_worst, err / worst);
      e.max_sigmas = std::max(e.max_sigmas, err / sigma);
      e.mean_abs_out += std::fabs(o[static_cast<size_t>(i)]) / count;
      e.mean_sigma += sigma / count;
    }
  }
  return e;
}

void report(const char* name, int64_t hd, const AttentionError& e) {
  std::printf(
      "%s attention, head_dim %3lld, 1000 cached tokens, 3 tokens x 4 heads: max |error| %.5f "
      "(mean |output| %.4f); error / worst-case bound <= %.3f; error <= %.2f sigma (mean sigma %.5f)\n",
      name, static_cast<long long>(hd), e.max_err, e.mean_abs_out, e.max_ratio_worst, e.max_sigmas, e.mean_sigma);
}

TEST(KvRows, Q8AttentionErrorWithinTheDerivedBound) {
  for (int64_t hd : {64, 128, 256}) {
    const AttentionError e = attention_error(KvType::Q8, hd, 1000, 3, 4, 11 + static_cast<unsigned>(hd), 6.0);
    report("q8", hd, e);
    EXPECT_GT(e.max_err, 0.0);
    // The statistical bound must mean something: sigma far below the outputs' own size.
    EXPECT_LT(e.mean_sigma, 0.1 * e.mean_abs_out) << "hd " << hd;
  }
}

TEST(KvRows, Q4AttentionErrorWithinItsLooserBound) {
  for (int64_t hd : {64, 128, 256}) {
    const AttentionError e = attention_error(KvType::Q4, hd, 1000, 3, 4, 21 + static_cast<unsigned>(hd), 8.0);
    report("q4", hd, e);
    EXPECT_GT(e.max_err, 0.0);
  }
}

}  // namespace
}  // namespace pocketlm::kernels
