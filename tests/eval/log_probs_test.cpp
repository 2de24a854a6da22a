// Per-position arithmetic of perplexity / KL divergence against plain double-precision references.
#include "eval/log_probs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "eval/kld_stats.h"

namespace pocketlm::eval {
namespace {

std::vector<float> random_logits(size_t n, uint32_t seed, float spread) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, spread);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<double> log_softmax_ref(const std::vector<float>& l) {
  double m = l[0];
  for (float x : l) m = std::max(m, static_cast<double>(x));
  double s = 0;
  for (float x : l) s += std::exp(x - m);
  std::vector<double> out(l.size());
  for (size_t i = 0; i < l.size(); ++i) out[i] = l[i] - m - std::log(s);
  return out;
}

TEST(LogProbs, TokenNllIsMinusLogSoftmax) {
  const auto l = random_logits(1000, 1, 3.0f);
  const auto ref = log_softmax_ref(l);
  for (int32_t t : {0, 17, 999}) EXPECT_NEAR(token_nll(l, t), -ref[static_cast<size_t>(t)], 1e-5);
}

TEST(LogProbs, RowBytesPadToAnEvenEntryCount) {
  EXPECT_EQ(log_prob_row_bytes(512), 8u + 1024u);
  EXPECT_EQ(log_prob_row_bytes(49152), 98312u);
  EXPECT_EQ(log_prob_row_bytes(5), 8u + 12u);
}

TEST(LogProbs, EncodedRowDecodesWithinHalfAStep) {
  for (float spread : {0.5f, 3.0f, 12.0f}) {
    const auto l = random_logits(777, 2, spread);
    std::vector<uint8_t> row(log_prob_row_bytes(777));
    const double nll = encode_log_prob_row(l, 5, row.data());
    const auto ref = log_softmax_ref(l);
    EXPECT_NEAR(nll, -ref[5], 1e-4);
    double max_lp = -1e9;
    for (double x : ref) max_lp = std::max(max_lp, x);
    for (size_t i = 0; i < l.size(); ++i) {
      if (ref[i] < max_lp - 16) {  // below the 16-nat window: code 0, read back as the window's floor
        EXPECT_NEAR(decode_log_prob(row.data(), static_cast<int64_t>(i)), max_lp - 16, 1e-4) << i;
        continue;
      }
      EXPECT_NEAR(decode_log_prob(row.data(), static_cast<int64_t>(i)), ref[i], 16.0 / 65535 * 0.5 + 2e-5) << i;
    }
  }
}

TEST(LogProbs, EntriesMoreThan16NatsBelowTheTopAreCodeZero) {
  std::vector<float> l = {0.0f, -3.0f, -20.0f, -40.0f};
  std::vector<uint8_t> row(log_prob_row_bytes(4));
  encode_log_prob_row(l, 0, row.data());
  const float floor_lp = decode_log_prob(row.data(), 2);
  EXPECT_EQ(floor_lp, decode_log_prob(row.data(), 3));
  const auto ref = log_softmax_ref(l);
  EXPECT_NEAR(floor_lp, ref[0] - 16.0, 1e-4);  // code 0 = 16 nats below the top
  EXPECT_NEAR(decode_log_prob(row.data(), 1), ref[1], 1.3e-4);
}

TEST(LogProbs, KlOfARowAgainstItsOwnEncodingIsZero) {
  const auto l = random_logits(4096, 3, 4.0f);
  std::vector<uint8_t> row(log_prob_row_bytes(4096));
  encode_log_prob_row(l, 9, row.data());
  const KlPosition k = kl_position(l, row.data(), 9);
  EXPECT_NEAR(k.kld, 0.0, 5e-5);  // rounding to 16/65535-nat steps and the mass below the 16-nat window
  EXPECT_TRUE(k.same_top);
  EXPECT_NEAR(k.nll, k.nll_base, 2e-4);
  EXPECT_NEAR(k.p_diff, 0.0, 1e-6);
}

TEST(LogProbs, KlMatchesTheExactDivergence) {
  const auto p = random_logits(2000, 4, 2.0f);
  auto q = p;
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (auto& x : q) x += noise(rng);
  std::vector<uint8_t> row(log_prob_row_bytes(2000));
  encode_log_prob_row(p, 0, row.data());
  const auto lp = log_softmax_ref(p), lq = log_softmax_ref(q);
  double exact = 0;
  for (size_t i = 0; i < p.size(); ++i) exact += std::exp(lp[i]) * (lp[i] - lq[i]);
  const KlPosition k = kl_position(q, row.data(), 0);
  EXPECT_NEAR(k.kld, exact, 1e-3 * exact + 1e-5);
  EXPECT_NEAR(k.nll, -lq[0], 1e-4);
  EXPECT_NEAR(k.p_diff, std::exp(lq[0]) - std::exp(lp[0]), 1e-4);
  size_t top_p = 0, top_q = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] > p[top_p]) top_p = i;
    if (q[i] > q[top_q]) top_q = i;
  }
  EXPECT_EQ(k.same_top, top_p == top_q);
}

TEST(KldStats, MeanAndErrorAsLlamaPerplexityEstimatesThem) {
  // 12 values: 1..12. mean 6.5; E[x²] - mean² = 143/12 - ... ; error = sqrt(var / 11)
  double s = 0, s2 = 0;
  for (int i = 1; i <= 12; ++i) {
    s += i;
    s2 += i * i;
  }
  const MeanErr m = mean_and_error(s, s2, 12);
  EXPECT_DOUBLE_EQ(m.value, 6.5);
  const double var = s2 / 12 - 6.5 * 6.5;
  EXPECT_DOUBLE_EQ(m.err, std::sqrt(var / 11));
  EXPECT_EQ(mean_and_error(s, s2, 10).err, 0.0);  // too few values for an error
}

TEST(KldStats, PercentilesInterpolateBetweenOrderStatistics) {
  const std::vector<float> v = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(percentile(v, 0.5), 3.0);
  EXPECT_NEAR(percentile(v, 0.1), 1.4, 1e-12);
  EXPECT_NEAR(percentile(v, 0.999), 4.996, 1e-9);
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 1.0), 5.0);
}

TEST(KldStats, ReportOfKnownPositions) {
  KldAccumulator acc;
  for (int i = 0; i < 100; ++i) {
    KlPosition p;
    p.kld = i * 0.01;
    p.nll = 2.0f;
    p.nll_base = 1.5f;
    p.p_diff = i % 2 == 0 ? 0.1f : -0.1f;
    p.same_top = i < 75;
    acc.add(p);
  }
  const KldReport r = acc.report();
  EXPECT_EQ(r.positions, 100);
  EXPECT_NEAR(r.kld.value, 0.495, 1e-12);
  EXPECT_NEAR(r.kld_median, 0.495, 1e-7);
  EXPECT_NEAR(r.kld_max, 0.99, 1e-7);
  EXPECT_NEAR(r.kld_min, 0.0, 1e-12);
  EXPECT_NEAR(r.kld_p90, 0.891, 1e-6);
  EXPECT_NEAR(r.ppl.value, std::exp(2.0), 1e-9);
  EXPECT_NEAR(r.ppl_base.value, std::exp(1.5), 1e-9);
  EXPECT_NEAR(r.ln_ppl_ratio.value, 0.5, 1e-9);
  EXPECT_NEAR(r.ppl_ratio.value, std::exp(0.5), 1e-9);
  EXPECT_NEAR(r.rms_dp.value, 0.1, 1e-7);
  EXPECT_NEAR(r.mean_dp.value, 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(r.same_top.value, 0.75);
  EXPECT_NEAR(r.same_top.err, std::sqrt(0.75 * 0.25 / 99), 1e-12);
}

}  // namespace
}  // namespace pocketlm::eval
