#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <map>

namespace pocketlm {
namespace {

TEST(Sampler, GreedyPicksFirstMaximum) {
  Sampler s({.temp = 0.0f});
  std::vector<float> l{0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegative) {
  Sampler s({.temp = 0.0f, .repeat_penalty = 2.0f, .repeat_last_n = 4});
  std::vector<float> l{3.0f, 2.0f, -1.0f};
  s.accept(0);  // 3.0 -> 1.5 : token 1 (2.0) now wins
  EXPECT_EQ(s.sample(l), 1);
  std::vector<float> neg{-0.5f, -0.6f};
  Sampler t({.temp = 0.0f, .repeat_penalty = 2.0f, .repeat_last_n = 4});
  t.accept(0);  // -0.5 -> -1.0 : token 1 wins
  EXPECT_EQ(t.sample(neg), 1);
}

TEST(Sampler, FrequencyAndPresencePenalties) {
  Sampler s({.temp = 0.0f, .repeat_last_n = 8, .frequency_penalty = 0.5f, .presence_penalty = 0.25f});
  std::vector<float> l{2.0f, 1.0f};
  s.accept(0);
  s.accept(0);  // 2.0 - 2*0.5 - 0.25 = 0.75 < 1.0
  EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, PenaltyWindowForgetsOldTokens) {
  Sampler s({.temp = 0.0f, .repeat_penalty = 10.0f, .repeat_last_n = 1});
  std::vector<float> l{3.0f, 2.0f, 0.0f};
  s.accept(0);
  s.accept(2);  // token 0 left the window
  EXPECT_EQ(s.sample(l), 0);
}

TEST(Sampler, TopKOneIsGreedy) {
  Sampler s({.temp = 1.0f, .top_k = 1, .seed = 7});
  std::vector<float> l{0.0f, 0.5f, 0.4f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, MinPRemovesUnlikelyTokens) {
  // p(token 2) / p(token 0) = e^-5 < 0.05: never drawn.
  Sampler s({.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.05f, .seed = 1});
  std::vector<float> l{5.0f, 4.9f, 0.0f};
  for (int i = 0; i < 200; ++i) EXPECT_NE(s.sample(l), 2);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  // probabilities ~ {0.84, 0.11, 0.04, ...}: top-p 0.8 keeps only token 0.
  Sampler s({.temp = 1.0f, .top_k = 0, .top_p = 0.8f, .min_p = 0.0f, .seed = 3});
  std::vector<float> l{4.0f, 2.0f, 1.0f, 0.0f};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(l), 0);
}

TEST(Sampler, SameSeedSameSequenceAndDistributionFollowsTemperature) {
  SamplerParams p{.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 42};
  Sampler a(p), b(p);
  std::vector<float> l{0.0f, std::log(3.0f)};  // p = {0.25, 0.75}
  std::map<int, int> counts;
  for (int i = 0; i < 4000; ++i) {
    const int x = a.sample(l);
    EXPECT_EQ(x, b.sample(l));
    ++counts[x];
  }
  EXPECT_NEAR(counts[1] / 4000.0, 0.75, 0.03);
}

}  // namespace
}  // namespace pocketlm
