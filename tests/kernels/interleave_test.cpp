// The row-interleaved x16 layouts (kernels/interleave.h): exact round trips, and the documented positions of
// scales and quant dwords, which every path's kernels (x86 and ARM) read.
#include "kernels/interleave.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "formats/kquants.h"
#include "formats/legacy.h"

namespace pocketlm::kernels {
namespace {

std::vector<uint8_t> random_rows(GgmlType t, int64_t k, unsigned seed) {
  std::vector<uint8_t> w(row_size(t, k) * kX16Rows);
  std::mt19937 rng(seed);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  return w;
}

class InterleaveTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(InterleaveTest, RoundTripIsExact) {
  const GgmlType t = GetParam();
  ASSERT_TRUE(has_x16_layout(t));
  for (int64_t blocks : {1, 3, 8}) {
    const int64_t k = blocks * type_traits(t).block_size;
    const size_t rb = row_size(t, k);
    const std::vector<uint8_t> rows = random_rows(t, k, static_cast<unsigned>(blocks));
    std::vector<uint8_t> group(rows.size()), back(rows.size(), 0xAB), one(rb);
    interleave_x16(t, rows.data(), rb, k, group.data());
    EXPECT_NE(group, rows);  // the layout really moves bytes
    deinterleave_x16(t, group.data(), k, back.data(), rb);
    EXPECT_EQ(back, rows) << "k=" << k;
    for (int r = 0; r < kX16Rows; ++r) {
      deinterleave_x16_row(t, group.data(), k, r, one.data());
      EXPECT_EQ(0, std::memcmp(one.data(), rows.data() + rb * r, rb)) << "row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, InterleaveTest,
                         ::testing::Values(GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0,
                                           GgmlType::Q4_K, GgmlType::Q6_K),
                         [](const auto& p) { return std::string(type_traits(p.param).name); });

TEST(Interleave, OnlyTheTypesWithKernels) {
  EXPECT_FALSE(has_x16_layout(GgmlType::F32));
  EXPECT_FALSE(has_x16_layout(GgmlType::Q5_1));
  EXPECT_FALSE(has_x16_layout(GgmlType::Q5_K));
}

TEST(Interleave, Q4_0PositionsAsDocumented) {
  const int64_t k = 64;
  const size_t rb = row_size(GgmlType::Q4_0, k);
  const std::vector<uint8_t> rows = random_rows(GgmlType::Q4_0, k, 7);
  std::vector<uint8_t> g(rows.size());
  interleave_x16(GgmlType::Q4_0, rows.data(), rb, k, g.data());
  for (int r = 0; r < kX16Rows; ++r) {
    const auto* b = reinterpret_cast<const block_q4_0*>(rows.data() + rb * r);
    for (int blk = 0; blk < 2; ++blk) {
      const uint8_t* gb = g.data() + 288 * blk;
      EXPECT_EQ(0, std::memcmp(gb + 2 * kX16Order[r], &b[blk].d, 2));
      for (int i = 0; i < 4; ++i)
        EXPECT_EQ(0, std::memcmp(gb + 32 + (i * 16 + kX16Order[r]) * 4, b[blk].qs + 4 * i, 4));
    }
  }
}

TEST(Interleave, Q4_KScalesSplitIntoNibblesAndTopBits) {
  const int64_t k = QK_K;
  const size_t rb = row_size(GgmlType::Q4_K, k);
  const std::vector<uint8_t> rows = random_rows(GgmlType::Q4_K, k, 9);
  std::vector<uint8_t> g(rows.size());
  interleave_x16(GgmlType::Q4_K, rows.data(), rb, k, g.data());
  for (int r = 0; r < kX16Rows; ++r) {
    const auto* b = reinterpret_cast<const block_q4_K*>(rows.data() + rb * r);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      k_scale_min(b->scales, j, sc, mn);
      const int c = j / 2, e = j % 2;
      const int lo = g[64 + (c * 16 + r) * 2 + e], hi = g[192 + c * 16 + r];
      EXPECT_EQ(sc, (lo & 15) | ((hi >> (4 * e)) & 3) << 4) << "row " << r << " sub " << j;
      EXPECT_EQ(mn, (lo >> 4) | ((hi >> (4 * e + 2)) & 3) << 4) << "row " << r << " sub " << j;
    }
  }
}

}  // namespace
}  // namespace pocketlm::kernels
