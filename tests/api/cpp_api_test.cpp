// The C++ API (include/pocketlm/pocketlm.hpp) over the C API: load errors as values, greedy generation
// that streams what it returns, stop strings, cancellation, and the stats.
#include "pocketlm/pocketlm.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_paths.h"

namespace pocketlm {
namespace {

TEST(CppApi, GeneratesStreamsStopsAndCancels) {
  if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  api::Model bad = api::Model::load("/nonexistent.gguf");
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.status().code, PLM_ERR_IO);
  EXPECT_NE(bad.status().message.find("/nonexistent.gguf"), std::string::npos);

  api::Model model = api::Model::load(test::stories_path().string());
  ASSERT_TRUE(model) << model.status().message;
  api::Context ctx;
  ASSERT_TRUE(api::Context::create(model, {.n_ctx = 256, .n_threads = 1}, ctx));
  api::GenerateParams p;
  p.temperature = 0;
  p.max_tokens = 32;
  std::string streamed;
  const api::GenerateResult full = ctx.generate("Once upon a time", p, [&](std::string_view t) {
    streamed.append(t);
    return true;
  });
  ASSERT_TRUE(full.status) << full.status.message;
  EXPECT_EQ(streamed, full.text);
  EXPECT_GT(full.stats.generated_tokens, 0);
  EXPECT_EQ(full.stats.prompt_tokens > 0, true);
  EXPECT_GT(full.stats.kv_bytes, 0u);
  ASSERT_GT(full.text.size(), 12u);

  p.stop = {full.text.substr(8, 4)};
  const api::GenerateResult stopped = ctx.generate("Once upon a time", p);
  ASSERT_TRUE(stopped.status) << stopped.status.message;
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(p.stop[0])));
  EXPECT_STREQ(stopped.stats.stop_reason, "stop_string");

  p.stop.clear();
  int calls = 0;
  const api::GenerateResult cancelled =
      ctx.generate("Once upon a time", p, [&](std::string_view) { return ++calls < 2; });
  EXPECT_EQ(cancelled.status.code, PLM_ERR_CANCELLED);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(full.text.substr(0, cancelled.text.size()), cancelled.text);
}

}  // namespace
}  // namespace pocketlm

namespace pocketlm {
namespace {

TEST(CppApi, SpeculativeContextGeneratesThePlainText) {
  if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  api::Model model = api::Model::load(test::stories_path().string());
  ASSERT_TRUE(model) << model.status().message;
  api::GenerateParams p;
  p.temperature = 0;
  p.max_tokens = 32;
  api::Context plain, spec;
  ASSERT_TRUE(api::Context::create(model, {.n_ctx = 256, .n_threads = 1}, plain));
  api::DraftParams d;
  d.self_type = "q4_0";
  const api::Status st = api::Context::create_speculative(model, {.n_ctx = 256, .n_threads = 1}, d, spec);
  ASSERT_TRUE(st) << st.message;
  EXPECT_EQ(spec.generate("Once upon a time", p).text, plain.generate("Once upon a time", p).text);
  EXPECT_GT(spec.draft_stats().rounds, 0);
  EXPECT_EQ(plain.draft_stats().rounds, 0);
  api::DraftParams none;
  EXPECT_FALSE(api::Context::create_speculative(model, {.n_ctx = 256, .n_threads = 1}, none, spec));
}

}  // namespace
}  // namespace pocketlm
