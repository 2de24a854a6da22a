// Multi-sequence forward steps (Session::eval_batch): a batched step's logits equal each sequence run alone,
// and a KV pool too small for one item changes no session. (The scheduler over them:
// runtime/batch_scheduler_tsan.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "kernels/dispatch.h"
#include "model/model.h"
#include "runtime/batch_scheduler.h"
#include "runtime/generator.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

const Model* stories() {
  static auto m = Model::load(test::stories_path().string());
  return m.ok() ? m->get() : nullptr;
}

std::vector<int32_t> encode(const std::string& text) { return stories()->tokenizer().encode(text, true, false); }

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

const std::vector<std::string> kPrompts = {"Once upon a time", "Tom had a red ball. He",
                                           "The cat sat on the mat and looked at the big dog", "Lily"};

class BatchEval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (stories() == nullptr) GTEST_SKIP() << test::stories_path() << " missing";
  }
};

TEST_F(BatchEval, OneStepOverSeveralSequencesGivesEachSequencesOwnLogits) {
  const SessionOptions o{.n_ctx = 256, .kv_type = KvType::F16, .n_threads = 2};
  std::vector<std::unique_ptr<Session>> batched, alone;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto a = Session::create(*stories(), o), b = Session::create(*stories(), o);
    ASSERT_TRUE(a.ok() && b.ok());
    batched.push_back(std::move(*a));
    alone.push_back(std::move(*b));
  }
  // Different prompt lengths, so the sequences sit at different positions; the batch mixes one-token decode
  // items with a prompt chunk asking for every token's logits.
  std::vector<std::vector<int32_t>> ids;
  for (size_t i = 0; i < kPrompts.size(); ++i) ids.push_back(encode(kPrompts[i]));
  for (size_t i = 0; i + 1 < kPrompts.size(); ++i) ASSERT_TRUE(batched[i]->eval(ids[i]).ok());
  std::vector<BatchItem> items;
  const int32_t next[] = {42, 100, 7};
  for (size_t i = 0; i + 1 < kPrompts.size(); ++i)
    items.push_back({batched[i].get(), std::span<const int32_t>(&next[i], 1)});
  items.push_back({batched[3].get(), ids[3], true});
  std::vector<std::span<const float>> out;
  ASSERT_TRUE(Session::eval_batch(items, out).ok());
  ASSERT_EQ(out.size(), 4u);
  std::vector<std::vector<float>> got;
  for (auto& s : out) got.emplace_back(s.begin(), s.end());
  for (size_t i = 0; i + 1 < kPrompts.size(); ++i) {
    ASSERT_TRUE(alone[i]->eval(ids[i]).ok());
    auto ref = alone[i]->eval(std::span<const int32_t>(&next[i], 1));
    ASSERT_TRUE(ref.ok());
    EXPECT_LT(max_abs_diff(got[i], *ref), 1e-4f) << "sequence " << i;
    EXPECT_EQ(batched[i]->n_past(), alone[i]->n_past());
  }
  auto ref3 = alone[3]->eval(ids[3], true);
  ASSERT_TRUE(ref3.ok());
  EXPECT_EQ(got[3].size(), ids[3].size() * static_cast<size_t>(stories()->config().n_vocab));
  EXPECT_LT(max_abs_diff(got[3], *ref3), 1e-4f);
  // The caches hold the same K/V: the next single-token evals still agree.
  const int32_t t = 5;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto a = batched[i]->eval(std::span<const int32_t>(&t, 1));
    ASSERT_TRUE(a.ok());
    std::vector<float> av(a->begin(), a->end());
    auto b = alone[i]->eval(std::span<const int32_t>(&t, 1));
    ASSERT_TRUE(b.ok());
    EXPECT_LT(max_abs_diff(av, *b), 1e-4f) << "sequence " << i;
  }
}

TEST_F(BatchEval, APoolTooSmallForOneItemChangesNoSession) {
  SessionOptions o{.n_ctx = 256, .kv_type = KvType::F16, .n_threads = 1, .kv_block = 16};
  const KvLayout layout = kv_layout_for(stories()->config(), o);
  auto pool = KvPool::create(layout.block_bytes(), layout.block_bytes() * static_cast<size_t>(layout.n_layer) * 3);
  ASSERT_TRUE(pool.ok());
  o.kv_pool = *pool;
  auto a = Session::create(*stories(), o), b = Session::create(*stories(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto ids = encode("Once upon a time there was a little girl who liked to play in the park with her dog");
  ASSERT_GT(ids.size(), 17u);
  ASSERT_TRUE((*a)->eval(std::span<const int32_t>(ids).first(16)).ok());  // 1 block per layer
  const size_t used = (*pool)->n_used();
  std::vector<BatchItem> items = {{a->get(), std::span<const int32_t>(ids).subspan(16, 1)},  // needs a 2nd block
                                  {b->get(), std::span<const int32_t>(ids).first(17)}};      // needs 2 blocks
  std::vector<std::span<const float>> out;
  const Status st = Session::eval_batch(items, out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("KV budget exhausted"), std::string::npos) << st.error().message();
  EXPECT_EQ((*a)->n_past(), 16);
  EXPECT_EQ((*b)->n_past(), 0);
  EXPECT_EQ((*pool)->n_used(), used);
}

}  // namespace
}  // namespace pocketlm

namespace pocketlm {
namespace {

// On a quantized model (SmolLM2 Q4_1: every matrix in the x16 layout on a path with its GEMV): one-token rows of
// four sequences in one step against each sequence's own single-row step, on every SIMD path. A row's result
// must not depend on the batch: the x16 batch GEMMs compute each column exactly as the GEMV does (the same
// integer sums, the same float epilogue per block). (Before the AVX-512 path had x16 batch GEMMs its 2-5 token
// batches ran the row GEMM, and logits moved by up to ~0.7.)
void expect_batched_rows_equal_single_rows() {
  auto m = Model::load(test::smollm2_path().string());
  ASSERT_TRUE(m.ok());
  const Model& model = **m;
  const SessionOptions o{.n_ctx = 256, .kv_type = KvType::F16, .n_threads = 2};
  const std::vector<std::string> prompts = {"The capital of France is", "Once upon a time",
                                            "def fibonacci(n):", "Rain is formed when"};
  std::vector<std::unique_ptr<Session>> batched, alone;
  std::vector<int32_t> next;
  for (const auto& p : prompts) {
    auto a = Session::create(model, o), b = Session::create(model, o);
    ASSERT_TRUE(a.ok() && b.ok());
    const auto ids = model.tokenizer().encode(p, true, false);
    ASSERT_TRUE((*a)->eval(ids).ok());
    auto l = (*b)->eval(ids);
    ASSERT_TRUE(l.ok());
    next.push_back(static_cast<int32_t>(std::max_element(l->begin(), l->end()) - l->begin()));
    batched.push_back(std::move(*a));
    alone.push_back(std::move(*b));
  }
  std::vector<BatchItem> items;
  for (size_t i = 0; i < prompts.size(); ++i)
    items.push_back({batched[i].get(), std::span<const int32_t>(&next[i], 1)});
  std::vector<std::span<const float>> out;
  ASSERT_TRUE(Session::eval_batch(items, out).ok());
  std::vector<std::vector<float>> got;
  for (auto& s : out) got.emplace_back(s.begin(), s.end());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto ref = alone[i]->eval(std::span<const int32_t>(&next[i], 1));
    ASSERT_TRUE(ref.ok());
    float mx = 0, range = 0;
    for (size_t j = 0; j < ref->size(); ++j) {
      mx = std::max(mx, std::abs(got[i][j] - (*ref)[j]));
      range = std::max(range, std::abs((*ref)[j]));
    }
    EXPECT_LT(mx, 1e-3f * range) << "sequence " << i;
  }
}

TEST(BatchEvalSmolLM2, DecodeRowsBatchedAgreeWithSingleRows) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "SmolLM2 missing";
  struct Restore {
    ~Restore() { (void)kernels::force_path_for_tests(kernels::runnable_tables().front()->name); }
  } restore;
  int checked = 0;
  for (const kernels::KernelTable* t : kernels::runnable_tables()) {
    if (std::string(t->name) == "scalar") continue;
    SCOPED_TRACE(t->name);
    ASSERT_TRUE(kernels::force_path_for_tests(t->name).ok());
    expect_batched_rows_equal_single_rows();
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no SIMD path on this machine";
}

}  // namespace
}  // namespace pocketlm
