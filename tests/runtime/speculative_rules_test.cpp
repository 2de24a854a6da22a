// The pieces of speculative decoding that need no model: the acceptance rule keeps the target's distribution
// (checked by simulation on small distributions), greedy and lookup special cases, prompt lookup's
// proposals, the adaptive draft length, and the drafting parameters' checks.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "runtime/speculative/acceptance.h"
#include "runtime/speculative/draft_length.h"
#include "runtime/speculative/draft_setup.h"
#include "runtime/speculative/lookup_draft.h"

namespace pocketlm {
namespace {

// The distribution of the emitted token when x ~ q and the rule decides (q empty: x is fixed).
std::map<int32_t, double> emitted(std::span<const TokenProb> p, std::span<const TokenProb> q, int32_t fixed_x, int n) {
  std::mt19937 rng(7), draft_rng(11);
  std::map<int32_t, double> freq;
  for (int i = 0; i < n; ++i) {
    const int32_t x = q.empty() ? fixed_x : draw_token(q, draft_rng);
    freq[accept_lossless(p, q, x, rng).token] += 1.0 / n;
  }
  return freq;
}

TEST(SpeculativeAcceptance, EmittedTokensHaveTheTargetDistribution) {
  const std::vector<TokenProb> p = {{3, 0.5f}, {1, 0.3f}, {7, 0.2f}};
  const std::vector<TokenProb> q = {{1, 0.6f}, {3, 0.2f}, {9, 0.2f}};  // 9: a token the target never keeps
  const auto f = emitted(p, q, -1, 200000);
  for (const TokenProb& t : p) EXPECT_NEAR(f.at(t.id), t.p, 0.005) << "token " << t.id;
  EXPECT_EQ(f.count(9), 0u);
}

TEST(SpeculativeAcceptance, DeterministicDraftKeepsTheTargetDistribution) {
  const std::vector<TokenProb> p = {{3, 0.5f}, {1, 0.3f}, {7, 0.2f}};
  for (int32_t x : {3, 1, 5}) {
    const auto f = emitted(p, {}, x, 200000);
    for (const TokenProb& t : p) EXPECT_NEAR(f.at(t.id), t.p, 0.005) << "draft " << x << ", token " << t.id;
  }
}

TEST(SpeculativeAcceptance, GreedyAcceptsTheArgmaxOnlyAndDrawsNothing) {
  std::mt19937 rng(1);
  const std::mt19937 before = rng;
  const std::vector<TokenProb> p = {{4, 1.0f}};
  const std::vector<TokenProb> q4 = {{4, 1.0f}}, q5 = {{5, 1.0f}};
  EXPECT_TRUE(accept_lossless(p, q4, 4, rng).accepted);
  const Verdict v = accept_lossless(p, q5, 5, rng);
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.token, 4);
  const Verdict l = accept_lossless(p, {}, 6, rng);  // lookup under greedy
  EXPECT_FALSE(l.accepted);
  EXPECT_EQ(l.token, 4);
  EXPECT_TRUE(rng == before);
}

TEST(LookupDraft, ProposesWhatFollowedTheLatestLongestMatch) {
  LookupDraft lookup(1, 3);
  Draft d;
  Sampler chain(SamplerParams{.temp = 0.0f});
  // ... 1 2 3 [4 5 6] ... 9 2 3 [7 8] ... 1 2 3 -> the 3-gram "1 2 3" matched at its latest place
  const std::vector<int32_t> ctx = {1, 2, 3, 4, 5, 6, 9, 2, 3, 7, 8, 1, 2, 3};
  ASSERT_TRUE(lookup.propose(ctx, 2, {}, chain, d).ok());
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_TRUE(d.q.empty());
  // Only "2 3" matches: the latest one is followed by 7 8 1 2 3.
  const std::vector<int32_t> ctx2 = {1, 2, 3, 4, 5, 6, 9, 2, 3, 7, 8, 1, 5, 2, 3};
  ASSERT_TRUE(lookup.propose(ctx2, 16, {}, chain, d).ok());
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{7, 8, 1, 5, 2, 3}));
  const std::vector<int32_t> none = {1, 2, 3, 4};
  ASSERT_TRUE(lookup.propose(none, 16, {}, chain, d).ok());
  EXPECT_TRUE(d.tokens.empty());
}

TEST(DraftLength, FollowsTheAcceptanceRate) {
  DraftParams p;
  p.max = 16;
  DraftLength len(p, 0.25);
  const int start = len.next();
  for (int i = 0; i < 30; ++i) len.update(len.next(), len.next());  // everything kept
  EXPECT_GT(len.next(), start);
  EXPECT_GT(len.acceptance(), 0.9);
  for (int i = 0; i < 30; ++i) len.update(len.next(), 0);  // nothing kept
  EXPECT_EQ(len.next(), 1);
  p.adaptive = false;
  p.max = 5;
  DraftLength fixed(p, 0.25);
  fixed.update(5, 0);
  EXPECT_EQ(fixed.next(), 5);
}

TEST(DraftLength, PredictedSpeedupFormula) {
  EXPECT_DOUBLE_EQ(expected_tokens(0.0, 4), 1.0);
  EXPECT_DOUBLE_EQ(expected_tokens(1.0, 4), 5.0);
  EXPECT_NEAR(expected_tokens(0.5, 2), 1.75, 1e-12);
  EXPECT_NEAR(predicted_speedup(0.5, 2, 0.2, 0.05), 1.75 / 1.5, 1e-12);
}

TEST(DraftParamsCheck, RejectsAnEmptyOrInvertedRange) {
  EXPECT_FALSE(check_draft_params({.max = 0}).ok());
  EXPECT_NE(check_draft_params({.max = 0}).error().message().find("at least 1"), std::string::npos);
  EXPECT_FALSE(check_draft_params({.max = 4, .min = 5}).ok());
  EXPECT_FALSE(check_draft_params({.max = 4, .p_min = 1.5f}).ok());
  EXPECT_TRUE(check_draft_params({}).ok());
}

}  // namespace
}  // namespace pocketlm
