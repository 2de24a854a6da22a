// f16/bf16 <-> f32: exhaustive over all 65536 16-bit patterns against formulas written independently here,
// narrowing checked at every rounding boundary and on random floats against a double-precision reference.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "formats/float.h"
#include "quant_vectors.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace pocketlm {
namespace {

// binary16 by definition: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals m * 2^-24.
double f16_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return s ? -mag : mag;
}

// Round a float to binary16 with the arithmetic of doubles: scale by the target's ulp, nearbyint (ties to
// even), scale back. Returns the value, +-inf on overflow.
double f16_round_reference(float f) {
  const double x = f, ax = std::fabs(x);
  if (ax == 0) return x;
  int exp;
  std::frexp(ax, &exp);                         // ax in [2^(exp-1), 2^exp)
  const int ulp_exp = std::max(exp - 11, -24);  // 11 significant bits; subnormal spacing 2^-24
  const double r = std::ldexp(std::nearbyint(std::ldexp(ax, -ulp_exp)), ulp_exp);
  const double out = r > 65504.0 ? std::numeric_limits<double>::infinity() : r;
  return std::signbit(x) ? -out : out;
}

double bf16_round_reference(float f) {
  const double x = f, ax = std::fabs(x);
  if (ax == 0) return x;
  int exp;
  std::frexp(ax, &exp);
  const int ulp_exp = std::max(exp - 8, -133);  // 8 significant bits; subnormal spacing 2^-133
  const double r = std::ldexp(std::nearbyint(std::ldexp(ax, -ulp_exp)), ulp_exp);
  const double max_bf16 = std::ldexp(255.0, 120);  // 0x7F7F
  const double out = r > max_bf16 ? std::numeric_limits<double>::infinity() : r;
  return std::signbit(x) ? -out : out;
}

TEST(Fp16, WideningIsExactForAll65536Patterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    const uint32_t bits = std::bit_cast<uint32_t>(f);
    const bool sign = h & 0x8000;
    ASSERT_EQ(std::signbit(f), sign) << std::hex << h;
    if ((h & 0x7C00) == 0x7C00) {
      if (h & 0x3FF) {  // NaN: quiet, payload kept in the top mantissa bits
        ASSERT_TRUE(std::isnan(f)) << std::hex << h;
        ASSERT_EQ(bits & 0x00400000u, 0x00400000u) << std::hex << h;
        ASSERT_EQ((bits >> 13) & 0x1FFu, h & 0x1FFu) << std::hex << h;
      } else {
        ASSERT_TRUE(std::isinf(f)) << std::hex << h;
      }
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), f16_value(static_cast<uint16_t>(h))) << std::hex << h;
    // Every finite half survives the round trip, including -0 and subnormals.
    ASSERT_EQ(fp32_to_fp16(f), h) << std::hex << h;
  }
}

TEST(Fp16, NarrowingRoundsToNearestEvenAtEveryBoundary) {
  for (uint32_t h = 0; h < 0x7BFF; ++h) {  // consecutive positive finite halves lo < hi
    const double lo = f16_value(static_cast<uint16_t>(h)), hi = f16_value(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((lo + hi) / 2);  // exact: 12 significant bits
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    ASSERT_EQ(fp32_to_fp16(mid), even) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(-mid), even | 0x8000) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 1e9f)), h + 1) << std::hex << h;
  }
  EXPECT_EQ(fp32_to_fp16(65519.99609375f), 0x7BFF);  // just below the Inf boundary
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);         // tie with an odd mantissa rounds up to Inf
  EXPECT_EQ(fp32_to_fp16(-1e30f), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);  // tie between 0 and the smallest subnormal: even
  EXPECT_EQ(fp32_to_fp16(0x1.000002p-25f), 0x0001);
  EXPECT_EQ(fp32_to_fp16(0x1.8p-24f), 0x0002);  // 1.5 * 2^-24 ties up to the even 2
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::quiet_NaN()), 0xFE00);
  EXPECT_EQ(fp32_to_fp16(std::bit_cast<float>(0x7F800001u)), 0x7E00);  // signalling NaN: quiet
}

TEST(Fp16, NarrowingMatchesDoubleReferenceOnRandomFloats) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    // Half the draws in the f16 exponent range, so the interesting region is well covered.
    uint32_t u = bits(rng);
    if (i & 1) u = (u & 0x807FFFFFu) | ((102u + (u >> 23) % 42u) << 23);
    const float f = std::bit_cast<float>(u);
    if (std::isnan(f)) continue;
    const uint16_t h = fp32_to_fp16(f);
    const double want = f16_round_reference(f);
    ASSERT_EQ(static_cast<double>(fp16_to_fp32(h)), want) << std::hex << u;
    ASSERT_EQ(std::signbit(fp16_to_fp32(h)), std::signbit(f)) << std::hex << u;
#if defined(__F16C__)
    const __m128i hw = _mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT);
    ASSERT_EQ(h, static_cast<uint16_t>(_mm_extract_epi16(hw, 0))) << std::hex << u;  // the hardware agrees
#endif
  }
}

TEST(Bf16, WideningIsExactForAll65536Patterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    ASSERT_EQ(std::bit_cast<uint32_t>(f), h << 16) << std::hex << h;
    if (std::isnan(f)) {
      ASSERT_EQ(fp32_to_bf16(f), h | 0x40) << std::hex << h;  // NaN stays NaN, made quiet
      continue;
    }
    const int s = static_cast<int>(h >> 15), e = static_cast<int>((h >> 7) & 255), m = static_cast<int>(h & 127);
    if (e != 255) {
      const double mag = e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 134);
      ASSERT_EQ(static_cast<double>(f), s ? -mag : mag) << std::hex << h;
    }
    ASSERT_EQ(fp32_to_bf16(f), h) << std::hex << h;
  }
}

TEST(Bf16, NarrowingRoundsToNearestEven) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = bits(rng);
    if (i % 3 == 0) u = (u & 0xFFFF0000u) | 0x8000u;               // exact ties
    if (i % 3 == 1) u = (u & 0xFFFF0000u) | (0x7FFFu + (u & 2u));  // just below / above the tie
    const float f = std::bit_cast<float>(u);
    if (std::isnan(f)) continue;
    const uint16_t h = fp32_to_bf16(f);
    ASSERT_EQ(static_cast<double>(bf16_to_fp32(h)), bf16_round_reference(f)) << std::hex << u;
    ASSERT_EQ(std::signbit(bf16_to_fp32(h)), std::signbit(f)) << std::hex << u;
  }
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to Inf
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F800001u)), 0x7FC0);  // signalling NaN: quiet
}

TEST(FloatRows, RowFunctionsMatchScalarConversions) {
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 1e-8f, 3.0e38f, -1e-40f};
  std::vector<uint16_t> h(x.size()), b(x.size());
  std::vector<float> back(x.size());
  quantize_row_f16(x.data(), h.data(), static_cast<int64_t>(x.size()));
  quantize_row_bf16(x.data(), b.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(h[i], fp32_to_fp16(x[i]));
    EXPECT_EQ(b[i], fp32_to_bf16(x[i]));
  }
  dequantize_row_f16(h.data(), back.data(), static_cast<int64_t>(h.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(test::same_float(back[i], fp16_to_fp32(h[i])));
  dequantize_row_bf16(b.data(), back.data(), static_cast<int64_t>(b.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(test::same_float(back[i], bf16_to_fp32(b[i])));
}

}  // namespace
}  // namespace pocketlm
