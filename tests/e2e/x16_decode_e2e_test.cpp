// End to end, decode through the row-interleaved x16 GEMVs (kernels/interleave.h, repacked at load by
// model/weights_repack.h) follows the same model as decode over the mapped GGUF rows: the same prompt, then
// 16 decode steps fed the same tokens (teacher forcing), compared step by step on the same kernel path. Both
// compute the integer block dots exactly and differ only in float summation order, so the distributions
// agree to ~1e-6 KL; a layout or kernel bug gives a large divergence at the first step. Also: the mapped
// pages of the repacked tensors are released (RSS does not hold the weights twice).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
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

constexpr const char* kPrompt = "The tower is 324 metres tall, about the same height as an 81-storey building, and the";

struct Run {
  std::vector<std::vector<float>> steps;  // logits after the prompt, then after each decode step
};

Run decode(const Model& model, const std::vector<int32_t>& prompt, const std::vector<int32_t>& forced) {
  Run run;
  SessionOptions opts;
  opts.n_ctx = 256;
  opts.n_threads = 2;
  auto session = Session::create(model, opts);
  EXPECT_TRUE(session.ok());
  if (!session.ok()) return run;
  auto logits = (*session)->eval(prompt);
  EXPECT_TRUE(logits.ok());
  if (!logits.ok()) return run;
  run.steps.emplace_back(logits->begin(), logits->end());
  for (int32_t t : forced) {
    auto next = (*session)->eval(std::vector<int32_t>{t});
    EXPECT_TRUE(next.ok());
    if (!next.ok()) return run;
    run.steps.emplace_back(next->begin(), next->end());
  }
  return run;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Loads `path` twice (GGUF rows, x16 copies), checks the repack happened for `type`, and compares decode.
void compare(const std::string& path, GgmlType type) {
  if (kernels::gemv_x16_for(type) == nullptr) GTEST_SKIP() << "the active path has no x16 GEMV for this type";
  ModelLoadOptions plain_opts, x16_opts;
  plain_opts.decode_layout = false;
  x16_opts.decode_layout = true;
  auto plain = Model::load(path, plain_opts);
  auto x16 = Model::load(path, x16_opts);
  ASSERT_TRUE(plain.ok() && x16.ok());
  EXPECT_EQ((*plain)->repacked().count(), 0);
  EXPECT_GT((*x16)->repacked().count(), 0);
  EXPECT_TRUE((*x16)->weights().layers[0].wq->interleaved_x16 ==
              (kernels::gemv_x16_for((*x16)->weights().layers[0].wq->type) != nullptr));
  const std::vector<int32_t> prompt = (*plain)->tokenizer().encode(kPrompt, true, false);
  // The plain model's greedy continuation, fed to both.
  std::vector<int32_t> forced;
  {
    const Run greedy = decode(**plain, prompt, {});
    ASSERT_FALSE(greedy.steps.empty());
    int32_t t = argmax(greedy.steps[0]);
    SessionOptions opts;
    opts.n_ctx = 256;
    opts.n_threads = 2;
    auto s = Session::create(**plain, opts);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->eval(prompt).ok());
    for (int i = 0; i < 16; ++i) {
      forced.push_back(t);
      auto l = (*s)->eval(std::vector<int32_t>{t});
      ASSERT_TRUE(l.ok());
      t = argmax(std::vector<float>(l->begin(), l->end()));
    }
  }
  const Run a = decode(**plain, prompt, forced), b = decode(**x16, prompt, forced);
  // The spread every SIMD path has against the scalar one on this model (activations are re-quantized at
  // each matmul, so float-order differences move a few q8 roundings): x16 must stay within it. On the
  // scalar path the x16 model runs the row kernels on de-interleaved rows: bit-identical to the file's rows.
  const std::string active = kernels::active_table().name;
  ASSERT_TRUE(kernels::force_path_for_tests("scalar").ok());
  const Run scalar_rows = decode(**plain, prompt, forced), scalar_x16 = decode(**x16, prompt, forced);
  ASSERT_TRUE(kernels::force_path_for_tests(active).ok());
  ASSERT_EQ(a.steps.size(), b.steps.size());
  double worst = 0, spread = 0;
  for (size_t i = 0; i < a.steps.size(); ++i) {
    EXPECT_EQ(scalar_rows.steps[i], scalar_x16.steps[i]) << "step " << i << ": de-interleaved rows differ";
    const double kl = test::softmax_kl(a.steps[i], b.steps[i]);
    worst = std::max(worst, kl);
    spread = std::max(spread, test::softmax_kl(scalar_rows.steps[i], a.steps[i]));
    if (argmax(a.steps[i]) != argmax(b.steps[i])) {
      std::vector<float> s = a.steps[i];
      std::partial_sort(s.begin(), s.begin() + 2, s.end(), std::greater<float>());
      EXPECT_LE(s[0] - s[1], 0.5f) << "step " << i << ": top token changed without a near tie";
    }
  }
  EXPECT_LE(worst, 3 * spread + 1e-4) << "x16 decode diverges more than the SIMD rows do from scalar";
  std::printf("%s: %d tensors repacked (%.1f MiB), %zu steps, worst KL x16 vs rows %.3g (SIMD rows vs scalar: %.3g)\n",
              active.c_str(), (*x16)->repacked().count(), static_cast<double>((*x16)->repacked().bytes()) / 1048576.0,
              a.steps.size(), worst, spread);
}

TEST(X16DecodeE2E, Gemma3Q4KAndQ6K) {
  if (!std::filesystem::exists(test::gemma3_path())) GTEST_SKIP() << "Gemma 3 not fetched (scripts/fetch-models.sh)";
  compare(test::gemma3_path().string(), GgmlType::Q4_K);
}

TEST(X16DecodeE2E, Smollm2RequantizedToQ4_0) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "SmolLM2 not fetched (scripts/fetch-models.sh)";
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers (requantizes the model)";
  if (kernels::gemv_x16_for(GgmlType::Q4_0) == nullptr) GTEST_SKIP() << "the active path has no x16 q4_0 GEMV";
  const test::RequantizedModel q4_0(test::smollm2_path(), "Q4_0");
  ASSERT_TRUE(q4_0.ok()) << q4_0.error();
  compare(q4_0.path(), GgmlType::Q4_0);
}

}  // namespace
}  // namespace pocketlm
