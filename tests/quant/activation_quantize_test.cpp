// Activation quantizers (q8_0, q8_1, q8_K, f16, bf16): byte-identical to the oracles in the vectors
// (gguf-py for q8_0/f16/bf16, the generator's numpy ports of ggml's reference rule for q8_1/q8_K), plus
// round-trip error bounds and field invariants on random rows.
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
#include "quant_vectors.h"

namespace pocketlm {
namespace {

class QuantizeVectorsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantizeVectorsTest, ByteIdenticalToOracle) {
  const std::string name = GetParam();
  const auto type = type_from_name(name);
  ASSERT_TRUE(type.has_value());
  const auto v = test::load_quantize_vectors(name);
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->type, static_cast<uint32_t>(*type));
  const auto n = static_cast<int64_t>(v->input.size());
  ASSERT_EQ(v->expected.size(), row_size(*type, n));
  std::vector<uint8_t> out(v->expected.size(), 0xCD);
  quantize_activations(*type, v->input.data(), out.data(), n);
  const size_t bsize = type_traits(*type).type_size;
  int bad = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != v->expected[i] && ++bad <= 8)
      ADD_FAILURE() << name << " byte " << i << " (block " << i / bsize << ", offset " << i % bsize << "): got "
                    << int{out[i]} << " expected " << int{v->expected[i]};
  }
  EXPECT_EQ(bad, 0) << name << ": " << bad << " of " << out.size() << " bytes differ";
}

INSTANTIATE_TEST_SUITE_P(ActivationTypes, QuantizeVectorsTest, ::testing::Values("q8_0", "q8_1", "q8_K", "f16", "bf16"),
                         [](const ::testing::TestParamInfo<const char*>& p) { return std::string(p.param); });

std::vector<float> random_row(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> expo(-5.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t b = 0; b < n / 32; ++b) {  // each 32 values with its own magnitude
    const float scale = std::pow(10.0f, expo(rng));
    for (int j = 0; j < 32; ++j) x[static_cast<size_t>(32 * b + j)] = normal(rng) * scale;
  }
  return x;
}

// |x - d16 * q| <= d/2 (rounding) + 127 * |d - d16| (the f16 rounding of the stored scale), d = amax/127.
template <typename Block>
void check_q8_legacy_round_trip(const std::vector<float>& x, const std::vector<Block>& y) {
  for (size_t b = 0; b < y.size(); ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    const float d = amax / 127.0f, d16 = fp16_to_fp32(y[b].d);
    const double bound = 0.5 * d * (1 + 1e-6) + 127.0 * std::fabs(double{d} - d16);
    for (int j = 0; j < 32; ++j) {
      const double err = std::fabs(double{x[32 * b + j]} - double{d16} * y[b].qs[j]);
      ASSERT_LE(err, bound) << "block " << b << " element " << j;
      ASSERT_LE(std::abs(int{y[b].qs[j]}), 127);
    }
  }
}

TEST(QuantizeQ8_0, RoundTripWithinHalfAStep) {
  const auto x = random_row(4096, 1);
  std::vector<block_q8_0> y(4096 / 32);
  quantize_row_q8_0(x.data(), y.data(), 4096);
  check_q8_legacy_round_trip(x, y);
}

TEST(QuantizeQ8_1, RoundTripAndSumField) {
  const auto x = random_row(4096, 2);
  std::vector<block_q8_1> y(4096 / 32);
  quantize_row_q8_1(x.data(), y.data(), 4096);
  check_q8_legacy_round_trip(x, y);
  std::vector<block_q8_0> as_q8_0(y.size());
  quantize_row_q8_0(x.data(), as_q8_0.data(), 4096);
  for (size_t b = 0; b < y.size(); ++b) {
    int sum = 0;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      sum += y[b].qs[j];
      amax = std::max(amax, std::fabs(x[32 * b + j]));
    }
    // s is f16(d * sum) with the float32 d = amax / 127 (not the f16-rounded d).
    EXPECT_EQ(y[b].s, fp32_to_fp16(static_cast<float>(sum) * (amax / 127.0f))) << b;
    EXPECT_EQ(y[b].d, as_q8_0[b].d);  // same quants and scale as Q8_0
    EXPECT_EQ(std::memcmp(y[b].qs, as_q8_0[b].qs, 32), 0);
  }
}

TEST(QuantizeQ8_K, RoundTripAndBlockSums) {
  std::vector<float> x = random_row(2048, 3);
  x[300] = 0.0f;
  std::vector<block_q8_K> y(2048 / QK_K);
  quantize_row_q8_K(x.data(), y.data(), 2048);
  for (size_t b = 0; b < y.size(); ++b) {
    float amax = 0.0f;
    for (int j = 0; j < QK_K; ++j) amax = std::max(amax, std::fabs(x[QK_K * b + j]));
    EXPECT_NEAR(std::fabs(y[b].d), amax / 127.0f, amax / 127.0f * 1e-6);
    int extreme = 0;
    for (int j = 0; j < QK_K; ++j) {
      const double err = std::fabs(double{x[QK_K * b + j]} - double{y[b].d} * y[b].qs[j]);
      ASSERT_LE(err, 0.5 * std::fabs(y[b].d) * (1 + 1e-5)) << "block " << b << " element " << j;
      ASSERT_LE(std::abs(int{y[b].qs[j]}), 127);
      extreme += std::abs(int{y[b].qs[j]}) == 127 ? 1 : 0;
    }
    EXPECT_GE(extreme, 1);  // the largest value maps to -127 * sign, d carries the sign
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[b].qs[16 * g + j];
      EXPECT_EQ(y[b].bsums[g], sum) << "block " << b << " group " << g;
    }
  }
}

TEST(QuantizeQ8_K, ZeroBlockIsAllZero) {
  std::vector<float> x(QK_K, 0.0f);
  x[5] = -0.0f;
  block_q8_K y;
  std::memset(&y, 0x5A, sizeof y);
  quantize_row_q8_K(x.data(), &y, QK_K);
  EXPECT_EQ(y.d, 0.0f);
  for (int8_t q : y.qs) EXPECT_EQ(q, 0);
  for (int16_t s : y.bsums) EXPECT_EQ(s, 0);
}

TEST(QuantizeQ8, HalvesRoundAsGgmlReference) {
  // amax = 127 makes d = 1 exactly, so x * (1/d) = x and the halves reach the rounding step unchanged.
  std::vector<float> x(QK_K, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 3.5f;
  x[4] = -0.5f;
  block_q8_0 a;
  quantize_row_q8_0(x.data(), &a, 32);
  EXPECT_EQ(a.qs[1], 3);  // Q8_0/Q8_1: halves away from zero (roundf)
  EXPECT_EQ(a.qs[2], -3);
  EXPECT_EQ(a.qs[3], 4);
  EXPECT_EQ(a.qs[4], -1);
  block_q8_K k;
  quantize_row_q8_K(x.data(), &k, QK_K);
  EXPECT_EQ(k.d, -1.0f);  // iscale = -127 / 127
  EXPECT_EQ(k.qs[0], -127);
  EXPECT_EQ(k.qs[1], -2);  // Q8_K: halves to even (nearest_int), on -x
  EXPECT_EQ(k.qs[2], 2);
  EXPECT_EQ(k.qs[3], -4);
  EXPECT_EQ(k.qs[4], 0);
}

TEST(QuantizeActivations, DispatchesToTheRowQuantizers) {
  const auto x = random_row(512, 4);
  std::vector<uint8_t> a(row_size(GgmlType::Q8_K, 512)), b(row_size(GgmlType::Q8_K, 512));
  quantize_activations(GgmlType::Q8_K, x.data(), a.data(), 512);
  quantize_row_q8_K(x.data(), reinterpret_cast<block_q8_K*>(b.data()), 512);
  EXPECT_EQ(a, b);
  std::vector<float> f(512);
  quantize_activations(GgmlType::F32, x.data(), f.data(), 512);
  EXPECT_EQ(std::memcmp(f.data(), x.data(), 512 * sizeof(float)), 0);
}

}  // namespace
}  // namespace pocketlm
