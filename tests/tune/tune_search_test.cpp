// Successive halving's decisions, the pick's tie rule and the stage sizes, on made-up scores.
#include <gtest/gtest.h>

#include "tune/tune_search.h"
#include "util/splitmix64.h"

namespace pocketlm {
namespace {

// n examples; candidate v scores base[i] + shift[v] + noise.
std::vector<std::vector<double>> scores(const std::vector<double>& shift, size_t n, double noise) {
  SplitMix64 rng(7);
  std::vector<double> base(n);
  for (double& b : base) b = 20.0 + 30.0 * static_cast<double>(rng.next() % 1000) / 1000.0;
  std::vector<std::vector<double>> x(shift.size());
  for (size_t v = 0; v < shift.size(); ++v)
    for (size_t i = 0; i < n; ++i)
      x[v].push_back(base[i] + shift[v] + noise * (static_cast<double>(rng.next() % 1000) / 1000.0 - 0.5));
  return x;
}

TEST(TuneSearch, DropsOnlyWhatIsWorseWithConfidence) {
  // 0, 1, 3 within the noise of each other; 2 clearly worse. Two go on as the top half; of the bottom half, 2 is
  // dropped and the third of {0, 1, 3} goes on: its interval to the leader includes zero.
  const auto x = scores({5.0, 4.9, -5.0, 4.8}, 40, 8.0);
  const StageDecision d = decide_stage(x, false, 1000, 12345);
  EXPECT_NE(d.leader, 2u);
  EXPECT_FALSE(d.keep[2]) << d.why[2];
  EXPECT_LT(d.boot.diff[2][d.leader].hi, 0);
  EXPECT_NE(d.why[2].find("worse than the leader with confidence"), std::string::npos);
  int leader = 0, top = 0, unsure = 0;
  for (size_t v : {0u, 1u, 3u}) {
    EXPECT_TRUE(d.keep[v]) << d.why[v];
    leader += d.why[v] == "leader";
    top += d.why[v] == "top half";
    unsure += d.why[v].find("bottom half but not worse with confidence") != std::string::npos;
  }
  EXPECT_EQ(leader, 1);
  EXPECT_EQ(top, 1);
  EXPECT_EQ(unsure, 1);
}

TEST(TuneSearch, LastStageDropsNothingAndDecisionsAreDeterministic) {
  const auto x = scores({0.0, -10.0, 3.0}, 30, 2.0);
  const StageDecision a = decide_stage(x, true, 500, 1), b = decide_stage(x, true, 500, 1);
  EXPECT_EQ(a.leader, 2u);
  for (size_t v = 0; v < 3; ++v) {
    EXPECT_TRUE(a.keep[v]);
    EXPECT_EQ(a.boot.diff[v][a.leader].lo, b.boot.diff[v][b.leader].lo);
  }
  const StageDecision c = decide_stage(x, false, 500, 1);
  EXPECT_FALSE(c.keep[1]);
}

TEST(TuneSearch, PickTakesTheBestAndTiesGoToTheSmallerFile) {
  EXPECT_EQ(pick_candidate({10.0, 12.0, 11.0}, {300, 500, 100}), 1u);
  EXPECT_EQ(pick_candidate({12.0, 12.0, 11.0}, {300, 200, 100}), 1u);
  EXPECT_EQ(pick_candidate({12.0, 12.0 + 1e-12, 12.0}, {300, 200, 250}), 1u);
  EXPECT_EQ(pick_candidate({5.0}, {1}), 0u);
}

TEST(TuneSearch, StagesHalveDownToTheMinimum) {
  EXPECT_EQ(stage_sizes(80, 12, 4), (std::vector<int64_t>{5, 10, 20, 40, 80}));  // 12 candidates: up to 5 stages
  EXPECT_EQ(stage_sizes(80, 12, 16), (std::vector<int64_t>{20, 40, 80}));
  EXPECT_EQ(stage_sizes(80, 2, 4), (std::vector<int64_t>{40, 80}));
  EXPECT_EQ(stage_sizes(80, 1, 4), (std::vector<int64_t>{80}));
  EXPECT_EQ(stage_sizes(6, 8, 4), (std::vector<int64_t>{6}));
}

}  // namespace
}  // namespace pocketlm
