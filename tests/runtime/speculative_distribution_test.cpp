// Speculative sampling is lossless: on stories260K with its q4_0 self-draft, the first 3 tokens of 20,000
// seeded runs follow the target's exact distribution (a chi-square goodness-of-fit test, p > 0.01), and a
// deliberately wrong acceptance rule (on rejection, draw from p instead of norm(max(0, p - q))) fails the
// same test. The exact distribution is enumerated from the target: every 3-token sequence the sampler chain
// (top-k, temperature, repetition penalty) can produce, with its probability. Plain sampling is checked
// against it too, so the test itself is known to accept a correct sampler.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/speculative/draft_setup.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

using Seq = std::vector<int32_t>;

// Regularised upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above).
double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double lg = std::lgamma(a);
  if (x < a + 1) {
    double sum = 1.0 / a, term = sum;
    for (int n = 1; n < 1000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::fabs(term) < std::fabs(sum) * 1e-15) break;
    }
    return 1.0 - sum * std::exp(-x + a * std::log(x) - lg);
  }
  double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (std::fabs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15) break;
  }
  return std::exp(-x + a * std::log(x) - lg) * h;
}

// Chi-square goodness of fit of observed counts to expected probabilities; cells expected below 5 are pooled.
double chi_square_p(const std::map<Seq, double>& expected, const std::map<Seq, int>& observed, int n) {
  double chi2 = 0, pooled_e = 0;
  int pooled_o = 0, cells = 0;
  for (const auto& [seq, prob] : expected) {
    const double e = prob * n;
    const auto it = observed.find(seq);
    const int o = it == observed.end() ? 0 : it->second;
    if (e < 5) {
      pooled_e += e;
      pooled_o += o;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++cells;
  }
  int unexpected = 0;  // sequences the chain gives probability 0
  for (const auto& [seq, o] : observed)
    if (!expected.count(seq)) unexpected += o;
  pooled_o += unexpected;
  if (pooled_e > 0) {
    chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++cells;
  }
  return gamma_q((cells - 1) / 2.0, chi2 / 2.0);
}

// The wrong rule: accept as the lossless rule does, but on rejection draw from p instead of the residual.
Verdict resample_from_target(std::span<const TokenProb> p, std::span<const TokenProb> q, int32_t x, std::mt19937& rng) {
  const Verdict v = accept_lossless(p, q, x, rng);
  if (v.accepted) return v;
  return {false, draw_token(p, rng)};
}

class SpeculativeDistribution : public ::testing::Test {
 protected:
  static constexpr int kRuns = 20000;
  void SetUp() override {
    if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
    auto m = Model::load(test::stories_path().string());
    ASSERT_TRUE(m.ok()) << m.error().message();
    model_ = std::move(m).value();
    prompt_ = model_->tokenizer().encode("Once upon a time", true, false);
  }
  Sampler sampler(uint32_t seed) const {
    Sampler s(
        SamplerParams{.temp = 1.0f, .top_k = 12, .top_p = 1.0f, .min_p = 0.0f, .repeat_penalty = 1.5f, .seed = seed});
    for (int32_t t : prompt_) s.accept(t);
    return s;
  }
  // Every 3-token continuation the chain can produce, with its probability.
  std::map<Seq, double> exact() {
    auto s = Session::create(*model_, SessionOptions{.n_ctx = 64, .n_threads = 1});
    EXPECT_TRUE(s.ok());
    std::map<Seq, double> out;
    std::vector<TokenProb> d1, d2, d3;
    Sampler c1 = sampler(0);
    auto l = (*s)->eval(prompt_);
    EXPECT_TRUE(l.ok());
    c1.distribution(*l, d1);
    const int64_t base = (*s)->n_past();
    for (const TokenProb& a : d1) {
      EXPECT_TRUE((*s)->truncate(base).ok());
      Sampler c2 = c1;
      c2.accept(a.id);
      auto l2 = (*s)->eval(std::span<const int32_t>(&a.id, 1));
      c2.distribution(*l2, d2);
      for (const TokenProb& b : d2) {
        EXPECT_TRUE((*s)->truncate(base + 1).ok());
        Sampler c3 = c2;
        c3.accept(b.id);
        auto l3 = (*s)->eval(std::span<const int32_t>(&b.id, 1));
        c3.distribution(*l3, d3);
        for (const TokenProb& c : d3) out[{a.id, b.id, c.id}] += static_cast<double>(a.p) * b.p * c.p;
      }
    }
    return out;
  }
  // The first 3 tokens of kRuns seeded runs (with the self-draft when `draft`).
  std::map<Seq, int> sample(DraftSource* draft, AcceptanceRule rule, SessionOptions o) {
    auto s = Session::create(*model_, o);
    EXPECT_TRUE(s.ok());
    std::map<Seq, int> counts;
    GenerateOptions opts{.max_tokens = 3, .ignore_eos = true};
    opts.acceptance = rule;
    opts.draft.max = 3;
    for (int i = 0; i < kRuns; ++i) {
      (*s)->reset();
      Sampler sp = sampler(static_cast<uint32_t>(1000 + i));
      auto r = Generator(**s, model_->tokenizer(), draft).generate(prompt_, sp, opts);
      EXPECT_TRUE(r.ok());
      if (!r.ok()) break;
      ++counts[r->tokens];
    }
    return counts;
  }
  std::unique_ptr<Model> model_;
  std::vector<int32_t> prompt_;
};

TEST_F(SpeculativeDistribution, FirstThreeTokensFollowTheTargetWithAQ4_0SelfDraft) {
  const std::map<Seq, double> want = exact();
  double total = 0;
  for (const auto& [seq, p] : want) total += p;
  ASSERT_NEAR(total, 1.0, 1e-4);

  SessionOptions o{.n_ctx = 64, .n_threads = 1};
  const double p_plain = chi_square_p(want, sample(nullptr, accept_lossless, o), kRuns);
  EXPECT_GT(p_plain, 0.01) << "plain sampling: the test itself is off";

  DraftConfig c;
  c.self_type = GgmlType::Q4_0;
  auto draft = make_draft_source(*model_, c, o);
  ASSERT_TRUE(draft.ok()) << draft.error().message();
  const double p_spec = chi_square_p(want, sample(draft->get(), accept_lossless, o), kRuns);
  EXPECT_GT(p_spec, 0.01) << "speculative sampling with the q4_0 self-draft";

  const double p_wrong = chi_square_p(want, sample(draft->get(), resample_from_target, o), kRuns);
  EXPECT_LT(p_wrong, 0.01) << "the wrong rule should fail the same test";
  std::cout << "[ figures  ] chi-square p: plain " << p_plain << ", speculative " << p_spec << ", wrong rule "
            << p_wrong << " (" << want.size() << " sequences)\n";
}

}  // namespace
}  // namespace pocketlm
