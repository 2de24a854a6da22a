#include "model/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "formats/float.h"
#include "kernels/dispatch.h"

namespace pocketlm {
namespace {

TEST(Ops, RmsNormHasUnitRms) {
  std::vector<float> x{1, -2, 3, -4}, out(4);
  std::vector<float> w{1, 1, 1, 2};
  ops::rms_norm(x.data(), w.data(), out.data(), 4, 1e-6f);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0);
  EXPECT_NEAR(out[0], 1 / rms, 1e-6);
  EXPECT_NEAR(out[3], -8 / rms, 1e-5);
}

TEST(Ops, RopeRotatesPairsAndKeepsNorm) {
  // Adjacent pairs: (x0, x1) rotates by pos * base^0 = pos radians.
  std::vector<float> x{1, 0, 1, 0};
  ops::rope(x.data(), 4, 1, 10000.0f, 1.0f, false);
  EXPECT_NEAR(x[0], std::cos(1.0f), 1e-6);
  EXPECT_NEAR(x[1], std::sin(1.0f), 1e-6);
  EXPECT_NEAR(x[2], std::cos(0.01f), 1e-6);  // base^(-2/4) = 0.01
  // NeoX pairs (i, i + d/2).
  std::vector<float> y{1, 1, 0, 0};
  ops::rope(y.data(), 4, 2, 10000.0f, 1.0f, true);
  EXPECT_NEAR(y[0], std::cos(2.0f), 1e-6);
  EXPECT_NEAR(y[2], std::sin(2.0f), 1e-6);
  EXPECT_NEAR(y[1] * y[1] + y[3] * y[3], 1.0f, 1e-6);
  // Position 0 is the identity.
  std::vector<float> z{0.3f, -0.7f, 2.0f, 5.0f};
  auto z0 = z;
  ops::rope(z.data(), 4, 0, 10000.0f, 1.0f, false);
  EXPECT_EQ(z, z0);
}

TEST(Ops, SoftmaxSumsToOneAndIsStableForLargeInputs) {
  std::vector<float> x{1000.0f, 1001.0f, 999.0f};
  kernels::scaled_softmax_for()(x.data(), 3, 1.0f, false);  // attention's softmax, on the active path
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0f, 1e-6);
  EXPECT_GT(x[1], x[0]);
  EXPECT_FALSE(std::isnan(x[2]));
}

TEST(Ops, SwiGlu) {
  std::vector<float> g{0.0f, 2.0f}, u{3.0f, 0.5f}, out(2);
  ops::swiglu(g.data(), u.data(), out.data(), 2);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 2.0f / (1.0f + std::exp(-2.0f)) * 0.5f, 1e-6);
}

// GELU (tanh form) as llama.cpp's CPU build computes it: the f16-rounded GELU of the f16-rounded input
// inside (-10, 10), 0 below, identity above.
TEST(Ops, GeluThroughHalfPrecision) {
  const auto exact = [](double x) {
    return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)));
  };
  for (float x = -12.0f; x <= 12.0f; x += 0.0137f) {
    const float g = ops::gelu(x);
    if (x <= -10.0f) {
      EXPECT_EQ(g, 0.0f) << x;
    } else if (x >= 10.0f) {
      EXPECT_EQ(g, x) << x;
    } else {
      EXPECT_EQ(fp16_to_fp32(fp32_to_fp16(g)), g) << "not a half-precision value at x = " << x;
      const double xh = fp16_to_fp32(fp32_to_fp16(x));
      EXPECT_NEAR(g, exact(xh), std::abs(exact(xh)) / 1024.0 + 1e-7) << x;  // within half an f16 ulp or so
    }
  }
  EXPECT_EQ(ops::gelu(0.0f), 0.0f);
  EXPECT_EQ(ops::gelu(1.0f), fp16_to_fp32(fp32_to_fp16(static_cast<float>(exact(1.0)))));
  // Values that round to the same half give the same GELU.
  EXPECT_EQ(ops::gelu(1.0f), ops::gelu(1.0001f));
}

TEST(Ops, GegluIsGeluTimesUp) {
  std::vector<float> g{-11.0f, -0.5f, 0.0f, 2.0f, 10.5f}, u{3.0f, 2.0f, 7.0f, 0.5f, -1.0f}, out(5);
  ops::geglu(g.data(), u.data(), out.data(), 5);
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(out[i], ops::gelu(g[i]) * u[i]) << i;
  EXPECT_EQ(out[4], -10.5f);
}

TEST(Ops, SoftcapBoundsLogits) {
  std::vector<float> x{0.0f, 1.0f, 100.0f, -1000.0f};
  ops::softcap(x.data(), 4, 30.0f);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_NEAR(x[1], 30.0 * std::tanh(1.0 / 30.0), 1e-6);
  EXPECT_LT(x[2], 30.0f);
  EXPECT_GE(x[3], -30.0f);
}

}  // namespace
}  // namespace pocketlm
