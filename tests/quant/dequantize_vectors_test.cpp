// Every reference dequantizer against gguf-py's numpy output on random and adversarial blocks, bit for bit.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "formats/dequantize.h"
#include "formats/ggml_type.h"
#include "quant_vectors.h"

namespace pocketlm {
namespace {

const char* const kTypes[] = {"f32",  "f16",  "bf16", "q4_0", "q4_1", "q5_0", "q5_1",   "q8_0",  "q8_1",
                              "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq4_nl", "iq4_xs"};

class DequantizeVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantizeVectors, BitIdenticalToGgufPy) {
  const std::string name = GetParam();
  const auto type = type_from_name(name);
  ASSERT_TRUE(type.has_value());
  const auto v = test::load_dequant_vectors(name);
  ASSERT_TRUE(v.has_value());
  const TypeTraits& t = type_traits(*type);
  ASSERT_EQ(v->type, static_cast<uint32_t>(*type));
  ASSERT_EQ(v->block_size, t.block_size);
  ASSERT_EQ(v->type_size, t.type_size);
  ASSERT_TRUE(t.can_dequantize);

  // Whole file as one row, then block by block (a row of one block at a time must agree too).
  std::vector<float> out(v->expected.size());
  dequantize_row(*type, v->raw.data(), out.data(), static_cast<int64_t>(out.size()));
  int mismatches = 0, nans = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    nans += std::isnan(v->expected[i]) ? 1 : 0;
    if (!test::same_float(out[i], v->expected[i]) && ++mismatches <= 8) {
      ADD_FAILURE() << name << " element " << i << " (block " << i / v->block_size << "): got " << out[i]
                    << " expected " << v->expected[i];
    }
  }
  EXPECT_EQ(mismatches, 0) << name << ": " << mismatches << " of " << out.size() << " differ";
  EXPECT_GT(v->n_blocks, 0u);
  if (t.block_size > 1) {
    EXPECT_GT(nans, 0) << name << ": the vectors should include NaN-scale blocks";
  }

  std::vector<float> one(v->block_size);
  for (uint32_t b = 0; b < v->n_blocks; b += 7) {
    dequantize_row(*type, v->raw.data() + size_t{b} * v->type_size, one.data(), v->block_size);
    for (uint32_t j = 0; j < v->block_size; ++j)
      ASSERT_TRUE(test::same_float(one[j], out[size_t{b} * v->block_size + j])) << name << " block " << b;
  }
  std::printf("[ vectors  ] %s: %u blocks, %zu values, %d NaN, oracle %s\n", name.c_str(), v->n_blocks, out.size(),
              nans, v->oracle == 0 ? "gguf-py" : "script numpy port");
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantizeVectors, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<const char*>& p) { return std::string(p.param); });

// Every type the table marks as dequantizable has vectors above (and nothing else is marked).
TEST(DequantizeVectors, TableFlagsMatchTheTestedTypes) {
  int flagged = 0;
  for (uint32_t raw = 0; raw < 64; ++raw) {
    const auto t = type_traits(raw);
    if (!t || !t->can_dequantize) continue;
    ++flagged;
    bool tested = false;
    for (const char* name : kTypes) tested = tested || type_from_name(name) == t->type;
    EXPECT_TRUE(tested) << t->name << " is marked can_dequantize but has no vectors";
  }
  EXPECT_EQ(flagged, static_cast<int>(std::size(kTypes)));
}

TEST(DequantizeRow, ZeroLengthRowIsANoOp) {
  float sentinel = 42.0f;
  dequantize_row(GgmlType::Q4_K, nullptr, &sentinel, 0);
  dequantize_row(GgmlType::F32, nullptr, &sentinel, 0);
  EXPECT_EQ(sentinel, 42.0f);
}

}  // namespace
}  // namespace pocketlm
