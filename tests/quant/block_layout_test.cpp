// The block structs agree with the type table, and the packed scale helpers decode hand-packed bytes.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/ggml_type.h"
#include "formats/kquants.h"
#include "formats/legacy.h"

namespace pocketlm {
namespace {

template <typename Block>
void expect_geometry(GgmlType type, int64_t elements) {
  const TypeTraits& t = type_traits(type);
  EXPECT_EQ(sizeof(Block), t.type_size) << t.name;
  EXPECT_EQ(elements, t.block_size) << t.name;
}

TEST(BlockLayout, StructsMatchTheTypeTable) {
  expect_geometry<block_q4_0>(GgmlType::Q4_0, QK4_0);
  expect_geometry<block_q4_1>(GgmlType::Q4_1, QK4_1);
  expect_geometry<block_q5_0>(GgmlType::Q5_0, QK5_0);
  expect_geometry<block_q5_1>(GgmlType::Q5_1, QK5_1);
  expect_geometry<block_q8_0>(GgmlType::Q8_0, QK8_0);
  expect_geometry<block_q8_1>(GgmlType::Q8_1, QK8_1);
  expect_geometry<block_q2_K>(GgmlType::Q2_K, QK_K);
  expect_geometry<block_q3_K>(GgmlType::Q3_K, QK_K);
  expect_geometry<block_q4_K>(GgmlType::Q4_K, QK_K);
  expect_geometry<block_q5_K>(GgmlType::Q5_K, QK_K);
  expect_geometry<block_q6_K>(GgmlType::Q6_K, QK_K);
  expect_geometry<block_q8_K>(GgmlType::Q8_K, QK_K);
  EXPECT_EQ(type_traits(GgmlType::F16).type_size, 2u);
  EXPECT_EQ(type_traits(GgmlType::BF16).type_size, 2u);
}

TEST(BlockLayout, KQuantScaleMinUnpacking) {
  // Scales s0..s7 = 1..8 (6 bits: 0b000001..), mins m0..m7 = 60..53; pack by the rule in kquants.h.
  uint8_t packed[K_SCALE_SIZE] = {};
  const uint8_t sc[8] = {1, 2, 3, 4, 45, 46, 47, 48}, mn[8] = {60, 59, 58, 57, 56, 55, 54, 53};
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    k_scale_min(packed, j, s, m);
    EXPECT_EQ(s, sc[j]) << j;
    EXPECT_EQ(m, mn[j]) << j;
  }
}

TEST(BlockLayout, Q3KScaleUnpacking) {
  // Six-bit values v_j = 3 * j + 2 (j 0..15), stored biased; decoded scale = v_j - 32.
  uint8_t packed[12] = {};
  for (int j = 0; j < 16; ++j) {
    const int v = 3 * j + 2;
    if (j < 8)
      packed[j] = static_cast<uint8_t>(packed[j] | (v & 0x0F));
    else
      packed[j - 8] = static_cast<uint8_t>(packed[j - 8] | ((v & 0x0F) << 4));
    packed[8 + j % 4] = static_cast<uint8_t>(packed[8 + j % 4] | ((v >> 4) << (2 * (j / 4))));
  }
  int8_t sc[16];
  q3_K_scales(packed, sc);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(sc[j], 3 * j + 2 - 32) << j;
}

TEST(BlockLayout, NibbleAndFifthBitOrder) {
  block_q5_0 b;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const uint32_t qh = 0x80000001u;  // fifth bit of element 0 and element 31
  std::memcpy(b.qh, &qh, 4);
  const uint32_t bits = q5_high_bits(b.qh);
  EXPECT_EQ(q5_low(b.qs, bits, 0), 16);        // element 0: 0 | 16
  EXPECT_EQ(q5_low(b.qs, bits, 5), 5);         // element 5
  EXPECT_EQ(q5_high(b.qs, bits, 0), 15);       // element 16: high nibble of byte 0
  EXPECT_EQ(q5_high(b.qs, bits, 15), 0 | 16);  // element 31: high nibble of byte 15 plus bit 31
}

}  // namespace
}  // namespace pocketlm
