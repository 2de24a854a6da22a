// Scalar reference dots: (1) against a double-precision dot of the dequantized rows, within an error bound
// derived from float rounding; (2) exactly, when unit scales make every term an integer; (3) on hand-made
// blocks whose dot is worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/dequantize.h"
#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/ref/vec_dot.h"

namespace pocketlm {
namespace {

constexpr uint16_t kF16One = 0x3C00;
const GgmlType kWeightTypes[] = {
    GgmlType::F32,  GgmlType::F16,      GgmlType::BF16,     GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
    GgmlType::Q5_1, GgmlType::Q8_0,     GgmlType::Q2_K,     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
    GgmlType::Q6_K, GgmlType::Q4_0_G64, GgmlType::Q4_0_G128};  // the last two: pocketlm-only

std::string type_name(const ::testing::TestParamInfo<GgmlType>& info) {
  return std::string(type_traits(info.param).name);
}

// Row bytes of a weight type, 4-byte aligned storage (the strictest block alignment).
struct Row {
  std::vector<uint32_t> words;
  explicit Row(size_t bytes) : words((bytes + 3) / 4) {}
  uint8_t* data() { return reinterpret_cast<uint8_t*>(words.data()); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(words.data()); }
  template <typename B>
  B* blocks() {
    return reinterpret_cast<B*>(words.data());
  }
};

uint16_t random_scale(std::mt19937& rng) {
  std::uniform_real_distribution<float> expo(-3.0f, 0.0f);
  return fp32_to_fp16((rng() & 1 ? 1.0f : -1.0f) * std::pow(10.0f, expo(rng)));
}

// Sets every f16 scale field of each block: `d` for scales, `m` for mins (Q4_1/Q5_1 min, K-quant dmin).
void set_scales(GgmlType type, Row& row, int64_t nb, std::mt19937& rng, bool unit) {
  auto pick_d = [&] { return unit ? kF16One : random_scale(rng); };
  auto pick_m = [&] { return unit ? kF16One : random_scale(rng); };
  for (int64_t b = 0; b < nb; ++b) {
    switch (type) {
      case GgmlType::Q4_0: row.blocks<block_q4_0>()[b].d = pick_d(); break;
      case GgmlType::Q5_0: row.blocks<block_q5_0>()[b].d = pick_d(); break;
      case GgmlType::Q8_0: row.blocks<block_q8_0>()[b].d = pick_d(); break;
      case GgmlType::Q4_1:
        row.blocks<block_q4_1>()[b].d = pick_d();
        row.blocks<block_q4_1>()[b].m = pick_m();
        break;
      case GgmlType::Q5_1:
        row.blocks<block_q5_1>()[b].d = pick_d();
        row.blocks<block_q5_1>()[b].m = pick_m();
        break;
      case GgmlType::Q2_K:
        row.blocks<block_q2_K>()[b].d = pick_d();
        row.blocks<block_q2_K>()[b].dmin = pick_m();
        break;
      case GgmlType::Q3_K: row.blocks<block_q3_K>()[b].d = pick_d(); break;
      case GgmlType::Q4_K:
        row.blocks<block_q4_K>()[b].d = pick_d();
        row.blocks<block_q4_K>()[b].dmin = pick_m();
        break;
      case GgmlType::Q5_K:
        row.blocks<block_q5_K>()[b].d = pick_d();
        row.blocks<block_q5_K>()[b].dmin = pick_m();
        break;
      case GgmlType::Q6_K: row.blocks<block_q6_K>()[b].d = pick_d(); break;
      case GgmlType::Q4_0_G64: row.blocks<block_q4_0_g64>()[b].d = pick_d(); break;
      case GgmlType::Q4_0_G128: row.blocks<block_q4_0_g128>()[b].d = pick_d(); break;
      default: break;
    }
  }
}

// A weight row: random bytes with sane scales (quantized types) or random finite values (float types).
// With `unit`, every scale is 1 and float types hold small integers.
Row make_weight_row(GgmlType type, int64_t n, std::mt19937& rng, bool unit) {
  Row row(row_size(type, n));
  const int64_t nb = n / type_traits(type).block_size;
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> small(-8, 8);
  if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) {
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = unit ? static_cast<float>(small(rng)) : normal(rng);
    quantize_activations(type, x.data(), row.data(), n);  // f32 copy / f16 / bf16 encoding
    return row;
  }
  for (size_t i = 0; i < row_size(type, n); ++i) row.data()[i] = static_cast<uint8_t>(rng());
  set_scales(type, row, nb, rng, unit);
  return row;
}

// Per element, the magnitude of the min (offset) part of a weight: Q4_1/Q5_1 m, Q2_K/Q4_K/Q5_K dmin * min.
std::vector<double> min_parts(GgmlType type, const Row& row, int64_t n) {
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const auto b = static_cast<size_t>(i / type_traits(type).block_size);
    const int e = static_cast<int>(i % type_traits(type).block_size);
    double v = 0.0;
    switch (type) {
      case GgmlType::Q4_1: v = fp16_to_fp32(reinterpret_cast<const block_q4_1*>(row.data())[b].m); break;
      case GgmlType::Q5_1: v = fp16_to_fp32(reinterpret_cast<const block_q5_1*>(row.data())[b].m); break;
      case GgmlType::Q2_K: {
        const auto& blk = reinterpret_cast<const block_q2_K*>(row.data())[b];
        v = fp16_to_fp32(blk.dmin) * (blk.scales[e / 16] >> 4);
        break;
      }
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: {
        const uint8_t* packed = type == GgmlType::Q4_K ? reinterpret_cast<const block_q4_K*>(row.data())[b].scales
                                                       : reinterpret_cast<const block_q5_K*>(row.data())[b].scales;
        const uint16_t dmin = type == GgmlType::Q4_K ? reinterpret_cast<const block_q4_K*>(row.data())[b].dmin
                                                     : reinterpret_cast<const block_q5_K*>(row.data())[b].dmin;
        uint8_t sc, m;
        k_scale_min(packed, e / 32, sc, m);
        v = fp16_to_fp32(dmin) * m;
        break;
      }
      default: break;
    }
    out[static_cast<size_t>(i)] = std::fabs(v);
  }
  return out;
}

class VecDotTest : public ::testing::TestWithParam<GgmlType> {};

// vec_dot(w, quantize(x)) vs sum_i w_i * a_i in double, with w = dequantize(w), a = dequantize(quantize(x)).
// Error model: every float operation of the kernel rounds once (relative 2^-24); there are at most a few per
// block plus one accumulation per block (or per lane), so |err| <= 2^-22 * (blocks + 8) * M, where
// M = sum_i (|w_i| + 2|min_i|) * |a_i| bounds the magnitude of every partial result (the scale and min parts
// of a weight are each at most |w_i| + |min_i|). Q4_1/Q5_1 also use the activation block sum s, which is
// rounded to f16: add 2^-10 * sum_blocks |m_b * s_b|.
TEST_P(VecDotTest, MatchesDoubleDotOfDequantizedRows) {
  const GgmlType wt = GetParam();
  const GgmlType at = vec_dot_type(wt);
  for (const int64_t n : {256, 4096}) {
    for (uint32_t seed = 0; seed < 4; ++seed) {
      std::mt19937 rng(seed * 7919 + static_cast<uint32_t>(wt));
      const Row w = make_weight_row(wt, n, rng, /*unit=*/false);
      std::vector<float> x(static_cast<size_t>(n));
      std::normal_distribution<float> normal;
      const float x_scale = seed == 3 ? 1e-3f : 4.0f;
      for (auto& v : x) v = normal(rng) * x_scale;
      if (seed == 2) x[5] = 100.0f;  // one outlier

      Row a(activation_row_size(wt, n));
      ASSERT_EQ(activation_row_size(wt, n), row_size(at, n));
      quantize_activations(at, x.data(), a.data(), n);
      std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
      dequantize_row(wt, w.data(), wf.data(), n);
      dequantize_row(at, a.data(), af.data(), n);
      const auto mins = min_parts(wt, w, n);

      double ref = 0.0, mag = 0.0;
      for (size_t i = 0; i < wf.size(); ++i) {
        ref += double{wf[i]} * af[i];
        mag += (std::fabs(double{wf[i]}) + 2 * mins[i]) * std::fabs(double{af[i]});
      }
      const int64_t nb = n / type_traits(wt).block_size;
      // The pocketlm-only group sizes accumulate once per 32-element part, not once per block.
      const int64_t n_acc = is_pocketlm_only(wt) ? n / 32 : nb;
      double tol = std::ldexp(1.0, -22) * static_cast<double>(n_acc + 8) * mag;
      if (at == GgmlType::Q8_1) {
        const auto* ab = reinterpret_cast<const block_q8_1*>(a.data());
        for (int64_t b = 0; b < nb; ++b)
          tol += std::ldexp(1.0, -10) * mins[static_cast<size_t>(32 * b)] * std::fabs(fp16_to_fp32(ab[b].s));
      }
      const float got = vec_dot(wt, n, w.data(), a.data());
      ASSERT_TRUE(std::isfinite(got));
      EXPECT_NEAR(got, ref, tol) << type_traits(wt).name << " n=" << n << " seed=" << seed << " M=" << mag;
      EXPECT_EQ(vec_dot_fn(wt)(n, w.data(), a.data()), got);  // same function behind both entry points
    }
  }
}

// Unit scales (and activation scale 1) make every weight and activation an integer and every kernel step an
// exact float operation (all partial sums stay below 2^24), so the result must equal the integer dot.
TEST_P(VecDotTest, ExactWithUnitScales) {
  const GgmlType wt = GetParam();
  const GgmlType at = vec_dot_type(wt);
  for (const int64_t n : {256, 512}) {
    for (uint32_t seed = 0; seed < 8; ++seed) {
      std::mt19937 rng(seed + 1000 * static_cast<uint32_t>(wt));
      const Row w = make_weight_row(wt, n, rng, /*unit=*/true);
      std::uniform_int_distribution<int> small(-8, 8);
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = static_cast<float>(small(rng));
      Row a(row_size(at, n));
      if (at == GgmlType::Q8_0 || at == GgmlType::Q8_1 || at == GgmlType::Q8_K) {
        // Build the activation blocks by hand with d = 1 (the quantizer would pick d = amax / 127).
        for (int64_t b = 0; b < n / 32; ++b) {
          int sum = 0;
          for (int j = 0; j < 32; ++j) sum += static_cast<int>(x[static_cast<size_t>(32 * b + j)]);
          if (at == GgmlType::Q8_0) {
            auto& blk = a.blocks<block_q8_0>()[b];
            blk.d = kF16One;
            for (int j = 0; j < 32; ++j) blk.qs[j] = static_cast<int8_t>(x[static_cast<size_t>(32 * b + j)]);
          } else if (at == GgmlType::Q8_1) {
            auto& blk = a.blocks<block_q8_1>()[b];
            blk.d = kF16One;
            blk.s = fp32_to_fp16(static_cast<float>(sum));  // |sum| <= 256: exact in f16
            for (int j = 0; j < 32; ++j) blk.qs[j] = static_cast<int8_t>(x[static_cast<size_t>(32 * b + j)]);
          }
        }
        if (at == GgmlType::Q8_K) {
          for (int64_t b = 0; b < n / QK_K; ++b) {
            auto& blk = a.blocks<block_q8_K>()[b];
            blk.d = 1.0f;
            for (int j = 0; j < QK_K; ++j) blk.qs[j] = static_cast<int8_t>(x[static_cast<size_t>(QK_K * b + j)]);
            for (int g = 0; g < 16; ++g) {
              int s = 0;
              for (int j = 0; j < 16; ++j) s += blk.qs[16 * g + j];
              blk.bsums[g] = static_cast<int16_t>(s);
            }
          }
        }
      } else {
        quantize_activations(at, x.data(), a.data(), n);  // small integers: exact in f32/f16/bf16
      }
      std::vector<float> wf(static_cast<size_t>(n));
      dequantize_row(wt, w.data(), wf.data(), n);
      int64_t exact = 0, mag = 0;
      for (size_t i = 0; i < wf.size(); ++i) {
        ASSERT_EQ(wf[i], std::nearbyint(wf[i])) << "unit-scale weights must be integers";
        const auto wi = static_cast<int64_t>(wf[i]), xi = static_cast<int64_t>(x[i]);
        exact += wi * xi;
        mag += (std::llabs(wi) + 2 * 63 * 1) * std::llabs(xi);  // 63: the largest 6-bit min
      }
      ASSERT_LT(mag, int64_t{1} << 24) << "test inputs too large for an exact float result";
      EXPECT_EQ(vec_dot(wt, n, w.data(), a.data()), static_cast<float>(exact))
          << type_traits(wt).name << " n=" << n << " seed=" << seed;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, VecDotTest, ::testing::ValuesIn(kWeightTypes), type_name);

TEST(VecDotType, PairsAsGgml) {
  EXPECT_EQ(vec_dot_type(GgmlType::F32), GgmlType::F32);
  EXPECT_EQ(vec_dot_type(GgmlType::F16), GgmlType::F16);
  EXPECT_EQ(vec_dot_type(GgmlType::BF16), GgmlType::BF16);
  EXPECT_EQ(vec_dot_type(GgmlType::Q4_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_type(GgmlType::Q5_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_type(GgmlType::Q8_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_type(GgmlType::Q4_1), GgmlType::Q8_1);
  EXPECT_EQ(vec_dot_type(GgmlType::Q5_1), GgmlType::Q8_1);
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    EXPECT_EQ(vec_dot_type(t), GgmlType::Q8_K);
  for (GgmlType t : kWeightTypes) EXPECT_TRUE(has_vec_dot(t));
  for (GgmlType t : {GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::IQ4_NL, GgmlType::I32, GgmlType::MXFP4})
    EXPECT_FALSE(has_vec_dot(t));
  EXPECT_EQ(activation_row_size(GgmlType::Q4_1, 64), 72u);
  EXPECT_EQ(activation_row_size(GgmlType::Q6_K, 512), 584u);
  EXPECT_EQ(activation_row_size(GgmlType::F16, 10), 20u);
}

// ---- hand-made blocks -------------------------------------------------------------------------------

block_q8_0 q8_0_all(int8_t q, uint16_t d = kF16One) {
  block_q8_0 b;
  b.d = d;
  std::memset(b.qs, static_cast<uint8_t>(q), sizeof b.qs);
  return b;
}

block_q8_K q8_K_all(int8_t q) {
  block_q8_K b;
  b.d = 1.0f;
  std::memset(b.qs, static_cast<uint8_t>(q), sizeof b.qs);
  for (auto& s : b.bsums) s = static_cast<int16_t>(16 * q);
  return b;
}

TEST(VecDotHandMade, Q8_0) {
  block_q8_0 w, a;
  w.d = a.d = kF16One;
  for (int j = 0; j < 32; ++j) w.qs[j] = a.qs[j] = static_cast<int8_t>(j);
  EXPECT_EQ(vec_dot(GgmlType::Q8_0, 32, &w, &a), 10416.0f);  // sum of j^2, j < 32
  a = q8_0_all(1);
  for (int j = 0; j < 32; ++j) w.qs[j] = static_cast<int8_t>(j - 16);
  EXPECT_EQ(vec_dot(GgmlType::Q8_0, 32, &w, &a), -16.0f);
}

TEST(VecDotHandMade, Q4_0AndQ5_0) {
  block_q4_0 w;
  w.d = kF16One;
  std::memset(w.qs, 0x9A, sizeof w.qs);  // elements 0..15: 10 - 8 = 2; elements 16..31: 9 - 8 = 1
  block_q8_0 a = q8_0_all(1);
  EXPECT_EQ(vec_dot(GgmlType::Q4_0, 32, &w, &a), 48.0f);
  a = q8_0_all(1, 0x3800);  // d = 0.5
  EXPECT_EQ(vec_dot(GgmlType::Q4_0, 32, &w, &a), 24.0f);

  block_q5_0 w5;
  w5.d = kF16One;
  std::memset(w5.qs, 0, sizeof w5.qs);
  std::memset(w5.qh, 0, sizeof w5.qh);  // every element 0 - 16
  a = q8_0_all(1);
  EXPECT_EQ(vec_dot(GgmlType::Q5_0, 32, &w5, &a), -512.0f);
  w5.qh[0] = 0x01;  // element 0 becomes 16 - 16 = 0
  w5.qh[2] = 0x01;  // element 16 too
  EXPECT_EQ(vec_dot(GgmlType::Q5_0, 32, &w5, &a), -480.0f);
}

TEST(VecDotHandMade, Q4_1AndQ5_1UseTheActivationSum) {
  block_q4_1 w;
  w.d = kF16One;
  w.m = kF16One;
  std::memset(w.qs, 0x21, sizeof w.qs);  // elements 0..15: 1 + 1; 16..31: 2 + 1
  block_q8_1 a;
  a.d = kF16One;
  std::memset(a.qs, 1, sizeof a.qs);
  a.s = fp32_to_fp16(32.0f);
  EXPECT_EQ(vec_dot(GgmlType::Q4_1, 32, &w, &a), 80.0f);
  a.s = fp32_to_fp16(0.0f);  // the min term comes only from s
  EXPECT_EQ(vec_dot(GgmlType::Q4_1, 32, &w, &a), 48.0f);

  block_q5_1 w5;
  w5.d = kF16One;
  w5.m = fp32_to_fp16(-1.0f);
  std::memset(w5.qs, 0, sizeof w5.qs);
  std::memset(w5.qh, 0xFF, sizeof w5.qh);  // every element 16 - 1 = 15
  a.s = fp32_to_fp16(32.0f);
  EXPECT_EQ(vec_dot(GgmlType::Q5_1, 32, &w5, &a), 480.0f);
}

TEST(VecDotHandMade, Q2_K) {
  block_q2_K w;
  std::memset(w.scales, 0x21, sizeof w.scales);  // scale 1, min 2
  std::memset(w.qs, 0xFF, sizeof w.qs);          // every quant 3: weight 3 - 2 = 1
  w.d = w.dmin = kF16One;
  const block_q8_K a = q8_K_all(1);
  EXPECT_EQ(vec_dot(GgmlType::Q2_K, 256, &w, &a), 256.0f);
}

TEST(VecDotHandMade, Q3_K) {
  block_q3_K w;
  std::memset(w.hmask, 0xFF, sizeof w.hmask);  // high bit set: no -4
  std::memset(w.qs, 0xFF, sizeof w.qs);        // every quant 3
  std::memset(w.scales, 0x11, 8);              // low 4 bits of every scale: 1
  std::memset(w.scales + 8, 0xAA, 4);          // top 2 bits: 2 -> 33 - 32 = 1
  w.d = kF16One;
  const block_q8_K a = q8_K_all(1);
  EXPECT_EQ(vec_dot(GgmlType::Q3_K, 256, &w, &a), 768.0f);
  std::memset(w.hmask, 0, sizeof w.hmask);  // every quant 3 - 4 = -1
  EXPECT_EQ(vec_dot(GgmlType::Q3_K, 256, &w, &a), -256.0f);
}

TEST(VecDotHandMade, Q4_KAndQ5_K) {
  block_q4_K w;
  w.d = w.dmin = kF16One;
  std::memset(w.scales, 1, 4);           // scales 0..3 = 1
  std::memset(w.scales + 4, 2, 4);       // mins 0..3 = 2
  std::memset(w.scales + 8, 0x21, 4);    // scales 4..7 = 1, mins 4..7 = 2
  std::memset(w.qs, 0x33, sizeof w.qs);  // every quant 3: weight 1 * 3 - 2 = 1
  const block_q8_K a = q8_K_all(1);
  EXPECT_EQ(vec_dot(GgmlType::Q4_K, 256, &w, &a), 256.0f);

  block_q5_K w5;
  w5.d = w5.dmin = kF16One;
  std::memcpy(w5.scales, w.scales, sizeof w5.scales);
  std::memset(w5.qs, 0x33, sizeof w5.qs);
  std::memset(w5.qh, 0xFF, sizeof w5.qh);  // every quant 3 + 16: weight 19 - 2 = 17
  EXPECT_EQ(vec_dot(GgmlType::Q5_K, 256, &w5, &a), 4352.0f);
}

TEST(VecDotHandMade, Q6_K) {
  block_q6_K w;
  std::memset(w.ql, 0, sizeof w.ql);
  std::memset(w.qh, 0, sizeof w.qh);  // every quant 0 - 32
  std::memset(w.scales, 1, sizeof w.scales);
  w.d = kF16One;
  const block_q8_K a = q8_K_all(1);
  EXPECT_EQ(vec_dot(GgmlType::Q6_K, 256, &w, &a), -8192.0f);
  w.scales[15] = -1;  // last 16 elements flip sign: -32 * 240 + 32 * 16
  EXPECT_EQ(vec_dot(GgmlType::Q6_K, 256, &w, &a), -7168.0f);
}

TEST(VecDotHandMade, FloatTypes) {
  const float w[4] = {1.0f, -2.0f, 3.0f, 0.5f}, x[4] = {4.0f, 5.0f, -6.0f, 8.0f};
  EXPECT_EQ(vec_dot(GgmlType::F32, 4, w, x), -20.0f);
  uint16_t wh[4], xh[4];
  quantize_row_f16(w, wh, 4);
  quantize_row_f16(x, xh, 4);
  EXPECT_EQ(vec_dot(GgmlType::F16, 4, wh, xh), -20.0f);
  quantize_row_bf16(w, wh, 4);
  quantize_row_bf16(x, xh, 4);
  EXPECT_EQ(vec_dot(GgmlType::BF16, 4, wh, xh), -20.0f);
}

}  // namespace
}  // namespace pocketlm
