// End to end, prefill through the packed GEMMs (kernels/packed_acts.h: batches of 6 tokens or more, on a
// path that has them) gives the scalar path's next-token distribution on real weights: Gemma 3 270M (its
// q4_K and q6_K tensors) and SmolLM2 requantized to Q4_0 here. The paths sum floats in different orders
// and activations are re-quantized before every matmul (see kernel_paths_e2e_test.cpp), so the check is
// the KL divergence of the last position's distribution and the top-1 token unless it is a near tie; a
// kernel bug gives a large divergence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "kernels/dispatch.h"
#include "model/model.h"
#include "requantized_model.h"
#include "runtime/session.h"
#include "softmax_kl.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace pocketlm {
namespace {

constexpr const char* kText =
    "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure in "
    "Paris. Its base is square, measuring 125 metres on each side. During its construction, the Eiffel Tower "
    "surpassed the Washington Monument";

std::vector<float> last_logits(const Model& model, const std::vector<int32_t>& prompt) {
  SessionOptions opts;
  opts.n_ctx = 256;
  opts.n_threads = 2;
  auto session = Session::create(model, opts);
  EXPECT_TRUE(session.ok());
  if (!session.ok()) return {};
  auto logits = (*session)->eval(prompt);
  EXPECT_TRUE(logits.ok());
  if (!logits.ok()) return {};
  return std::vector<float>(logits->begin(), logits->end());
}

class PackedPrefillE2E : public ::testing::Test {
 protected:
  void TearDown() override {
    ASSERT_TRUE(kernels::force_path_for_tests(kernels::runnable_tables().front()->name).ok());
  }

  // Every SIMD path against the scalar path (those without a packed GEMM for `type` show the spread of
  // unpacked kernels for comparison); returns how many paths ran packed.
  int check(const Model& model, GgmlType type) {
    auto tok = Tokenizer::from_gguf(model.gguf());
    EXPECT_TRUE(tok.ok());
    if (!tok.ok()) return 0;
    const std::vector<int32_t> prompt = (*tok)->encode(kText, true, false);
    EXPECT_GE(prompt.size(), 32u);
    EXPECT_TRUE(kernels::force_path_for_tests("scalar").ok());
    const std::vector<float> ref = last_logits(model, prompt);
    std::vector<float> sorted = ref;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    const auto ref_top = std::max_element(ref.begin(), ref.end()) - ref.begin();
    int packed = 0;
    for (const kernels::KernelTable* path : kernels::runnable_tables()) {
      if (std::string(path->name) == "scalar") continue;
      const bool is_packed = path->find_packed(type) != nullptr;
      packed += is_packed ? 1 : 0;
      EXPECT_TRUE(kernels::force_path_for_tests(path->name).ok());
      const std::vector<float> got = last_logits(model, prompt);
      EXPECT_EQ(got.size(), ref.size());
      if (got.size() != ref.size()) continue;
      const double kl = test::softmax_kl(ref, got);
      EXPECT_LT(kl, 0.02) << path->name;
      const auto got_top = std::max_element(got.begin(), got.end()) - got.begin();
      if (got_top != ref_top) {
        EXPECT_LE(sorted[0] - sorted[1], 1.0f) << path->name << " changed the top token";
      }
      std::printf("%s (%s): %zu-token prefill, KL vs scalar %.6f, top-1 %s\n", path->name,
                  is_packed ? "packed" : "not packed", prompt.size(), kl,
                  got_top == ref_top ? "same" : "differs (near tie)");
    }
    return packed;
  }
};

TEST_F(PackedPrefillE2E, Gemma3Q4KAndQ6KTensors) {
  if (!std::filesystem::exists(test::gemma3_path())) GTEST_SKIP() << "Gemma 3 not fetched (scripts/fetch-models.sh)";
  auto model = Model::load(test::gemma3_path().string());
  ASSERT_TRUE(model.ok()) << model.error().message();
  if (check(**model, GgmlType::Q4_K) == 0) GTEST_SKIP() << "no kernel path on this CPU has packed GEMMs";
}

TEST_F(PackedPrefillE2E, Smollm2RequantizedToQ4_0) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "SmolLM2 not fetched (scripts/fetch-models.sh)";
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers (requantizes the model)";
  bool any = false;
  for (const kernels::KernelTable* path : kernels::runnable_tables()) any = any || path->find_packed(GgmlType::Q4_0);
  if (!any) GTEST_SKIP() << "no kernel path on this CPU has packed GEMMs";
  const test::RequantizedModel q4_0(test::smollm2_path(), "Q4_0");
  ASSERT_TRUE(q4_0.ok()) << q4_0.error();
  auto model = Model::load(q4_0.path());
  ASSERT_TRUE(model.ok()) << model.error().message();
  EXPECT_GT(check(**model, GgmlType::Q4_0), 0);
}

}  // namespace
}  // namespace pocketlm
