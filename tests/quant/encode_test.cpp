// Encoders: encode -> our decode round trips with error bounds on Gaussian, heavy-tailed and adversarial rows;
// non-finite input and bad shapes rejected with a clear error; threads do not change the bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "formats/dequantize.h"
#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/quantize.h"
#include "quant/encode_rows.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

struct Bound {
  GgmlType type;
  double gaussian;  // RMSE / sigma on N(0, sigma) rows, measured ~0.8x of this
};
// Measured relative RMSEs (1024-wide rows): q8_0 .0053, q6_K .016, q5_K .034, q5_1 .034, q5_0 .040, q4_K .070,
// q4_1 .069, q4_0 .081, q3_K .145, q2_K .265.
const Bound kBounds[] = {
    {GgmlType::Q8_0, 0.007}, {GgmlType::Q6_K, 0.02},  {GgmlType::Q5_K, 0.042},  {GgmlType::Q5_1, 0.042},
    {GgmlType::Q5_0, 0.05},  {GgmlType::Q4_K, 0.085}, {GgmlType::Q4_1, 0.085},  {GgmlType::Q4_0, 0.10},
    {GgmlType::Q3_K, 0.18},  {GgmlType::Q2_K, 0.33},  {GgmlType::IQ4_NL, 0.09}, {GgmlType::IQ4_XS, 0.09},
};

std::vector<float> encode_decode(GgmlType type, const std::vector<float>& x, int64_t n_per_row,
                                 const float* importance = nullptr, QuantSearch search = QuantSearch::fast) {
  const int64_t n_rows = static_cast<int64_t>(x.size()) / n_per_row;
  std::vector<uint8_t> blocks(row_size(type, n_per_row) * static_cast<size_t>(n_rows));
  auto r = quantize_rows(type, x.data(), blocks.data(), n_rows, n_per_row, importance, nullptr, search);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  if (r.ok()) {
    EXPECT_EQ(*r, blocks.size());
  }
  std::vector<float> y(x.size());
  for (int64_t i = 0; i < n_rows; ++i)
    dequantize_row(type, blocks.data() + static_cast<size_t>(i) * row_size(type, n_per_row), y.data() + i * n_per_row,
                   n_per_row);
  return y;
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

TEST(Encode, GaussianRoundTripWithinBounds) {
  const std::vector<float> x = test::gaussian_rows(16, 1024, 1, false);
  for (const Bound& b : kBounds) {
    const auto y = encode_decode(b.type, x, 1024);
    const double rel = rmse(x, y) / 0.02;
    EXPECT_LT(rel, b.gaussian) << type_traits(b.type).name;
    EXPECT_GT(rel, 0.0) << type_traits(b.type).name;  // a lossy format that is exact here is a broken test
  }
}

TEST(Encode, HeavyTailedRoundTripWithinBounds) {
  const std::vector<float> x = test::gaussian_rows(16, 1024, 2, true);
  const double scale = rms(x);
  for (const Bound& b : kBounds) {
    const auto y = encode_decode(b.type, x, 1024);
    EXPECT_TRUE(all_finite(y)) << type_traits(b.type).name;
    // Relative to the rows' RMS (inflated by the outliers): measured 1.4-1.75x the Gaussian ratios.
    EXPECT_LT(rmse(x, y) / scale, 2 * b.gaussian) << type_traits(b.type).name;
  }
}

TEST(Encode, ImportanceLowersTheWeightedError) {
  // Encoding with importance must give a smaller importance-weighted error than encoding without.
  const std::vector<float> x = test::gaussian_rows(32, 1024, 3, false);
  const std::vector<float> imp = test::lognormal_importance(1024, 4);
  for (const Bound& b : kBounds) {
    if (b.type == GgmlType::Q8_0) continue;  // ggml's Q8_0 is round-to-nearest: importance ignored
    std::vector<uint8_t> plain(row_size(b.type, 1024) * 32), weighted(plain.size());
    ASSERT_TRUE(quantize_rows(b.type, x.data(), plain.data(), 32, 1024, nullptr, nullptr).ok());
    ASSERT_TRUE(quantize_rows(b.type, x.data(), weighted.data(), 32, 1024, imp.data(), nullptr).ok());
    const double e_plain = test::reconstruction_error(b.type, plain, x.data(), 32, 1024, imp.data()).rmse();
    const double e_weighted = test::reconstruction_error(b.type, weighted, x.data(), 32, 1024, imp.data()).rmse();
    EXPECT_LT(e_weighted, 0.95 * e_plain) << type_traits(b.type).name;
  }
}

TEST(Encode, ImportanceWithZeroColumnsStaysWellDefined) {
  // Columns the calibration never activated have importance 0: whole blocks of them, or all of them.
  const std::vector<float> x = test::gaussian_rows(4, 512, 15, true);
  std::vector<float> half = test::lognormal_importance(512, 16), none(512, 0.0f);
  std::fill(half.begin(), half.begin() + 256, 0.0f);
  for (const Bound& b : kBounds)
    for (const std::vector<float>* imp : {&half, &none}) {
      const auto y = encode_decode(b.type, x, 512, imp->data());
      ASSERT_TRUE(all_finite(y)) << type_traits(b.type).name;
      // Zero-importance blocks fall back to unit weights: still an ordinary encoding of their values.
      std::vector<float> xs(x.begin(), x.begin() + 256), ys(y.begin(), y.begin() + 256);
      EXPECT_LT(rmse(xs, ys) / rms(xs), 2 * b.gaussian) << type_traits(b.type).name;
    }
}

TEST(Encode, AllZeroRowsDecodeToZero) {
  const std::vector<float> x(2 * 512, 0.0f);
  for (const Bound& b : kBounds) {
    const auto y = encode_decode(b.type, x, 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_traits(b.type).name;
  }
}

// Small constants push the two-level formats' f16 super-scale (e.g. Q5_K: d = c / (31 * 63)) into f16's
// subnormals, where its steps are coarse: 1e-2 relative (measured worst: IQ4_XS, 5.8e-3).
TEST(Encode, ConstantRowsAreNearlyExact) {
  for (float c : {0.37f, -1.25f, 3e-3f}) {
    const std::vector<float> x(512, c);
    for (const Bound& b : kBounds) {
      const auto y = encode_decode(b.type, x, 512);
      for (float v : y) ASSERT_NEAR(v, c, 1e-2 * std::fabs(c)) << type_traits(b.type).name << " c=" << c;
    }
  }
}

TEST(Encode, OneHugeValueIsKept) {
  std::vector<float> x = test::gaussian_rows(1, 512, 5, false);
  x[77] = 1000.0f;
  for (const Bound& b : kBounds) {
    const auto y = encode_decode(b.type, x, 512);
    ASSERT_TRUE(all_finite(y)) << type_traits(b.type).name;
    EXPECT_NEAR(y[77], 1000.0f, 10.0f) << type_traits(b.type).name;
    // Blocks without the outlier keep their ordinary accuracy.
    std::vector<float> xs(x.begin() + 256, x.end()), ys(y.begin() + 256, y.end());
    EXPECT_LT(rmse(xs, ys) / 0.02, 1.5 * b.gaussian) << type_traits(b.type).name;
  }
}

TEST(Encode, ValuesBeyondTheScaleRangeSaturateFinitely) {
  // |x| so large that even the largest f16 scale cannot reach it: decoded values stay finite (saturated).
  std::vector<float> x = test::gaussian_rows(1, 256, 7, false);
  x[5] = 1e30f;
  x[200] = -3e38f;
  for (QuantSearch search : {QuantSearch::fast, QuantSearch::nearest})
    for (const Bound& b : kBounds) {
      const auto y = encode_decode(b.type, x, 256, nullptr, search);
      ASSERT_TRUE(all_finite(y)) << type_traits(b.type).name << " " << quant_search_name(search);
      EXPECT_GT(y[5], 6e4f) << type_traits(b.type).name;  // Q4_1/Q5_1 reach -65504 at most: their f16 min
      EXPECT_LT(y[200], -6e4f) << type_traits(b.type).name;
    }
}

TEST(Encode, TinyValuesStayFiniteAndSmall) {
  // ~1e-30: every scale underflows f16; ~1e-38: subnormal floats, whose scales' inverses overflow float.
  for (float factor : {5e-29f, 5e-37f}) {
    std::vector<float> x = test::gaussian_rows(1, 256, 6, false);
    for (float& v : x) v *= factor;
    for (QuantSearch search : {QuantSearch::fast, QuantSearch::nearest})
      for (const Bound& b : kBounds) {
        const auto y = encode_decode(b.type, x, 256, nullptr, search);
        for (size_t i = 0; i < x.size(); ++i) {
          ASSERT_TRUE(std::isfinite(y[i])) << type_traits(b.type).name << " " << quant_search_name(search);
          ASSERT_LE(std::fabs(y[i] - x[i]), 1e-28) << type_traits(b.type).name << " " << quant_search_name(search);
        }
      }
  }
}

TEST(Encode, Fp16RangeValuesStayFinite) {
  // Values across the whole f16 range (+-65504): scales near the top of f16 must not overflow to Inf.
  std::vector<float> x = test::gaussian_rows(2, 512, 8, false);
  for (float& v : x) v = std::clamp(v * 30000.0f / 0.02f, -65504.0f, 65504.0f);
  x[3] = 65504.0f;
  x[300] = -65504.0f;
  const double scale = rms(x);
  for (const Bound& b : kBounds) {
    const auto y = encode_decode(b.type, x, 512);
    ASSERT_TRUE(all_finite(y)) << type_traits(b.type).name;
    EXPECT_LT(rmse(x, y) / scale, 2 * b.gaussian) << type_traits(b.type).name;
  }
}

TEST(Encode, NonFiniteInputIsRejected) {
  std::vector<float> x = test::gaussian_rows(3, 256, 9, false);
  std::vector<uint8_t> out(row_size(GgmlType::Q4_K, 256) * 3);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> y = x;
    y[256 + 5] = bad;
    y[2 * 256 + 9] = bad;  // a later one: the first in row order is named
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::Q4_0}) {
      std::vector<uint8_t> o(row_size(t, 256) * 3);
      auto r = quantize_rows(t, y.data(), o.data(), 3, 256, nullptr, nullptr);
      ASSERT_FALSE(r.ok());
      const std::string& msg = r.error().message();
      EXPECT_NE(msg.find("row 1, column 5"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::isnan(bad) ? "NaN" : "Inf"), std::string::npos) << msg;
    }
  }
}

TEST(Encode, BadShapesAndImportanceAreRejected) {
  const std::vector<float> x(576, 0.5f);
  std::vector<uint8_t> out(4096);
  auto r = quantize_rows(GgmlType::Q4_K, x.data(), out.data(), 1, 576, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("multiple of 256"), std::string::npos) << r.error().message();
  r = quantize_rows(GgmlType::IQ2_XXS, x.data(), out.data(), 1, 256, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("iq2_xxs"), std::string::npos) << r.error().message();
  std::vector<float> imp(576, 1.0f);
  imp[10] = -1.0f;
  r = quantize_rows(GgmlType::Q4_0, x.data(), out.data(), 1, 576, imp.data(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("column 10"), std::string::npos) << r.error().message();
}

TEST(Encode, ThreadsDoNotChangeTheBytes) {
  const std::vector<float> x = test::gaussian_rows(37, 512, 12, true);
  const std::vector<float> imp = test::lognormal_importance(512, 13);
  ThreadPool pool(3);
  for (const Bound& b : kBounds) {
    std::vector<uint8_t> one(row_size(b.type, 512) * 37), many(one.size());
    ASSERT_TRUE(quantize_rows(b.type, x.data(), one.data(), 37, 512, imp.data(), nullptr).ok());
    ASSERT_TRUE(quantize_rows(b.type, x.data(), many.data(), 37, 512, imp.data(), &pool).ok());
    EXPECT_EQ(one, many) << type_traits(b.type).name;
  }
}

TEST(Encode, FloatTypesRoundTrip) {
  const std::vector<float> x = test::gaussian_rows(2, 64, 14, false);
  EXPECT_EQ(encode_decode(GgmlType::F32, x, 64), x);
  const auto h = encode_decode(GgmlType::F16, x, 64);
  const auto bf = encode_decode(GgmlType::BF16, x, 64);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(h[i], x[i], std::fabs(x[i]) * 1e-3 + 1e-7);
    EXPECT_NEAR(bf[i], x[i], std::fabs(x[i]) * 8e-3 + 1e-7);
  }
}

// Values that already lie on a q4_K grid as llama.cpp writes it without an imatrix (each super-block's
// largest sub-block scale and min at 63, every sub-block using levels 0 and 15): encoding them again finds
// that grid. This is what requantizing a dequantized Q4_K_M release does for its q4_K tensors (Gemma 3's
// release); the encoder once settled a factor 64/63 off with every sub-scale one lower.
TEST(Encode, Q4_KValuesOnAGridComeBackExactly) {
  constexpr int kBlocks = 64;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> six(0, 63), four(0, 15), sub(0, 7);
  std::uniform_real_distribution<float> scale(1e-4f, 5e-3f);
  std::vector<block_q4_K> grid(kBlocks);
  for (block_q4_K& b : grid) {
    b.d = fp32_to_fp16(scale(rng));
    b.dmin = fp32_to_fp16(scale(rng) * 4);
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = 1 + six(rng) % 63;
      mn[j] = six(rng);
    }
    sc[sub(rng)] = 63;
    mn[sub(rng)] = 63;
    for (int j = 0; j < 4; ++j) {  // the 12-byte packing of formats/kquants.h (k_scale_min)
      b.scales[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
      b.scales[j + 4] = static_cast<uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
      b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    uint8_t q[256];
    for (int i = 0; i < 256; ++i) q[i] = static_cast<uint8_t>(four(rng));
    for (int j = 0; j < 8; ++j) {
      q[32 * j] = 0;
      q[32 * j + 1] = 15;
    }
    for (int p = 0; p < 4; ++p)
      for (int l = 0; l < 32; ++l) b.qs[32 * p + l] = static_cast<uint8_t>(q[64 * p + l] | q[64 * p + 32 + l] << 4);
  }
  std::vector<float> x(kBlocks * 256);
  dequantize_row(GgmlType::Q4_K, reinterpret_cast<const uint8_t*>(grid.data()), x.data(), kBlocks * 256);
  const std::vector<float> y = encode_decode(GgmlType::Q4_K, x, kBlocks * 256);
  EXPECT_LT(rmse(x, y), 1e-6 * rms(x)) << "relative RMSE " << rmse(x, y) / rms(x);
}

}  // namespace
}  // namespace pocketlm
