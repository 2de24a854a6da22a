// vec_dot against the generator's float32 port of ggml's generic accumulation order (no FMA contraction):
// bit-identical. This pins the operation order, so a refactor that reorders or fuses float steps fails here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/ggml_type.h"
#include "kernels/ref/vec_dot.h"
#include "quant/quant_vectors.h"

namespace pocketlm {
namespace {

size_t row_bytes(uint32_t raw_type, int64_t n) {
  const auto t = type_traits(raw_type);
  return t ? row_size(t->type, n) : 0;
}

// Copies a byte row into 4-byte aligned storage (the strictest block alignment).
std::vector<uint32_t> aligned(const std::vector<uint8_t>& bytes) {
  std::vector<uint32_t> out((bytes.size() + 3) / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

class VecDotVectorsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VecDotVectorsTest, BitIdenticalToGenericOrder) {
  const std::string name = GetParam();
  const auto wt = type_from_name(name);
  ASSERT_TRUE(wt.has_value());
  const auto v = test::load_vecdot_vectors(name, row_bytes);
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->weight_type, static_cast<uint32_t>(*wt));
  ASSERT_EQ(v->act_type, static_cast<uint32_t>(vec_dot_type(*wt)));
  ASSERT_GT(v->n_rows, 0u);
  for (uint32_t r = 0; r < v->n_rows; ++r) {
    const auto w = aligned(v->weights[r]), a = aligned(v->activations[r]);
    const float got = vec_dot(*wt, v->n, w.data(), a.data());
    EXPECT_TRUE(test::same_float(got, v->expected[r]))
        << name << " row " << r << ": got " << got << " expected " << v->expected[r];
  }
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, VecDotVectorsTest,
                         ::testing::Values("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K",
                                           "q4_K", "q5_K", "q6_K"),
                         [](const ::testing::TestParamInfo<const char*>& p) { return std::string(p.param); });

}  // namespace
}  // namespace pocketlm
