// The one generate loop (runtime/generator.h) on stories260K: greedy text equals a hand-written argmax loop,
// stop strings cut the text where they start and are never streamed (even split across tokens), max_tokens,
// the callback's stop, and a prompt that does not fit.
#include "runtime/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "model/model.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
    auto m = Model::load(test::stories_path().string());
    ASSERT_TRUE(m.ok()) << m.error().message();
    model_ = std::move(m).value();
    auto s = Session::create(*model_, SessionOptions{.n_ctx = 128, .n_threads = 1});
    ASSERT_TRUE(s.ok()) << s.error().message();
    session_ = std::move(s).value();
    prompt_ = model_->tokenizer().encode("Once upon a time, there was a", true, true);
  }
  // Generates greedily from the prompt in a fresh sequence; `streamed` gets what the callback saw.
  Expected<GenerateResult> run(const GenerateOptions& o, std::string* streamed = nullptr,
                               const std::function<bool(int32_t)>& keep_going = {}) {
    session_->reset();
    Sampler greedy(SamplerParams{.temp = 0.0f, .seed = 1});
    return Generator(*session_, model_->tokenizer()).generate(prompt_, greedy, o, [&](int32_t t, std::string_view s) {
      if (streamed) streamed->append(s);
      return t < 0 || !keep_going || keep_going(t);
    });
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Session> session_;
  std::vector<int32_t> prompt_;
};

TEST_F(GeneratorTest, GreedyEqualsAPlainArgmaxLoop) {
  std::vector<int32_t> expected;
  session_->reset();
  auto l = session_->eval(prompt_);
  ASSERT_TRUE(l.ok());
  for (int i = 0; i < 30; ++i) {
    const auto next = static_cast<int32_t>(std::max_element(l->begin(), l->end()) - l->begin());
    if (model_->tokenizer().is_eog(next)) break;
    expected.push_back(next);
    l = session_->eval(std::span<const int32_t>(&next, 1));
    ASSERT_TRUE(l.ok());
  }
  std::string streamed;
  auto r = run({.max_tokens = 30}, &streamed);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->tokens, expected);
  EXPECT_EQ(r->text, streamed);
  EXPECT_EQ(r->stats.prompt_tokens, static_cast<int64_t>(prompt_.size()));
  EXPECT_EQ(r->stats.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(r->stats.stop, expected.size() == 30 ? StopReason::MaxTokens : StopReason::EndOfGeneration);
  EXPECT_GT(r->stats.kv_bytes, 0u);
  EXPECT_GT(r->stats.peak_rss_bytes, 0u);
}

TEST_F(GeneratorTest, StopStringsCutTheTextAndAreNeverStreamed) {
  auto full = run({.max_tokens = 40});
  ASSERT_TRUE(full.ok());
  const std::string& text = full->text;
  ASSERT_GT(text.size(), 30u) << text;
  // A stop string spanning token boundaries, from the middle of the text (its first occurrence counts).
  const std::string stop = text.substr(text.size() / 2, 7);
  const size_t at = text.find(stop);
  std::string streamed;
  auto r = run({.max_tokens = 40, .stop = {"no such text", stop}}, &streamed);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stats.stop, StopReason::StopString);
  EXPECT_EQ(r->text, text.substr(0, at));
  EXPECT_EQ(streamed, r->text);
  // A stop string that never appears holds text back only until it is ruled out: all is streamed.
  streamed.clear();
  auto none = run({.max_tokens = 40, .stop = {text.substr(0, 3) + "\x01"}}, &streamed);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->text, text);
  EXPECT_EQ(streamed, text);
}

TEST_F(GeneratorTest, CallbackStopsAndMaxTokensLimit) {
  int seen = 0;
  auto r = run({.max_tokens = 40}, nullptr, [&](int32_t) { return ++seen < 5; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stats.stop, StopReason::Callback);
  EXPECT_EQ(r->tokens.size(), 5u);
  auto m = run({.max_tokens = 3});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->tokens.size(), 3u);
  EXPECT_EQ(m->stats.stop, StopReason::MaxTokens);
  auto zero = run({.max_tokens = 0});
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->tokens.empty());
}

TEST_F(GeneratorTest, ContextFullAndAPromptThatDoesNotFit) {
  auto r = run({.max_tokens = -1, .ignore_eos = true});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->stats.stop, StopReason::ContextFull);
  EXPECT_EQ(session_->n_past(), 128);
  std::vector<int32_t> long_prompt(128, prompt_.back());
  session_->reset();
  Sampler s(SamplerParams{.temp = 0.0f, .seed = 1});
  auto bad = Generator(*session_, model_->tokenizer()).generate(long_prompt, s, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("does not fit the context of 128 tokens"), std::string::npos)
      << bad.error().message();
}

}  // namespace
}  // namespace pocketlm
