// Two sessions on one model, generating at the same time on two threads, give the tokens each gives alone:
// a Model is read-only once loaded, and nothing global changes while sessions decode. Built as its own small
// binary (pocketlm_concurrency_tests) so CI can also build and run it under ThreadSanitizer cheaply
// (scripts/test.sh, -DPOCKETLM_TSAN=ON). Sessions asking for the same threads share the process's pool
// (shared_thread_pool): their forward passes take turns on it.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/session.h"
#include "test_paths.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

std::vector<int32_t> greedy(const Model& m, const std::string& prompt, int n) {
  auto s = Session::create(m, SessionOptions{.n_ctx = 128, .n_threads = 2});
  EXPECT_TRUE(s.ok());
  if (!s.ok()) return {};
  Sampler sampler(SamplerParams{.temp = 0.0f, .seed = 1});
  auto r = Generator(**s, m.tokenizer())
               .generate(m.tokenizer().encode(prompt, true, true), sampler, {.max_tokens = n, .ignore_eos = true});
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? r->tokens : std::vector<int32_t>{};
}

TEST(ConcurrentSessions, TwoContextsOnOneModelEqualOneAtATime) {
  if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  auto m = Model::load(test::stories_path().string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  const Model& model = **m;
  const std::string a = "Once upon a time, there was a little girl", b = "The dog ran to the park and";
  const std::vector<int32_t> alone_a = greedy(model, a, 40), alone_b = greedy(model, b, 40);
  ASSERT_EQ(alone_a.size(), 40u);
  ASSERT_NE(alone_a, alone_b);
  for (int round = 0; round < 3; ++round) {
    std::vector<int32_t> together_a, together_b;
    std::thread ta([&] { together_a = greedy(model, a, 40); });
    std::thread tb([&] { together_b = greedy(model, b, 40); });
    ta.join();
    tb.join();
    EXPECT_EQ(together_a, alone_a) << "round " << round;
    EXPECT_EQ(together_b, alone_b) << "round " << round;
  }
}

// The pool the sessions share, driven directly from two threads (what TSan checks the hand-off of).
TEST(ConcurrentSessions, TwoCallersOnTheSharedPool) {
  std::shared_ptr<ThreadPool> pool = shared_thread_pool(2);
  auto caller = [&](int64_t n, std::atomic<int64_t>& sum) {
    for (int round = 0; round < 300; ++round) pool->parallel_for(n, [&](int64_t b, int64_t e, int) { sum += e - b; });
  };
  std::atomic<int64_t> sa{0}, sb{0};
  std::thread ta([&] { caller(17, sa); });
  std::thread tb([&] { caller(40, sb); });
  ta.join();
  tb.join();
  EXPECT_EQ(sa.load(), 300 * 17);
  EXPECT_EQ(sb.load(), 300 * 40);
}

}  // namespace
}  // namespace pocketlm
