// The task metrics against their reference packages: tests/data/metrics/vectors.json holds what
// rouge-score, sacrebleu and B-Norm.py compute for a fixed set of strings (scripts/gen-metric-vectors.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/metrics_bleu.h"
#include "eval/metrics_chrf.h"
#include "eval/metrics_rouge.h"
#include "eval/metrics_text.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

constexpr double kTol = 1e-6;

nlohmann::json load_vectors() {
  std::ifstream in(test::source_dir() / "tests/data/metrics/vectors.json");
  EXPECT_TRUE(in) << "tests/data/metrics/vectors.json missing: run scripts/gen-metric-vectors.py";
  return nlohmann::json::parse(in);
}

std::vector<std::string> refs_of(const nlohmann::json& c) { return c.at("references").get<std::vector<std::string>>(); }

TEST(EvalMetrics, VectorsCoverTheTrickyCases) {
  const auto v = load_vectors();
  ASSERT_GE(v.at("sentences").size(), 20u);
  bool empty_hyp = false, multi_ref = false, non_ascii = false;
  for (const auto& c : v.at("sentences")) {
    const auto h = c.at("hypothesis").get<std::string>();
    empty_hyp = empty_hyp || h.empty();
    multi_ref = multi_ref || c.at("references").size() > 1;
    for (unsigned char ch : h) non_ascii = non_ascii || ch >= 0x80;
  }
  EXPECT_TRUE(empty_hyp && multi_ref && non_ascii);
}

TEST(EvalMetrics, RougeMatchesRougeScore) {
  const auto v = load_vectors();
  for (const auto& c : v.at("sentences")) {
    const auto hyp = c.at("hypothesis").get<std::string>();
    const RougeScores s = rouge_multi(refs_of(c), hyp);
    const std::pair<const char*, const RougeScore*> types[] = {
        {"rouge1", &s.rouge1}, {"rouge2", &s.rouge2}, {"rougeL", &s.rougeL}};
    for (const auto& [name, got] : types) {
      const auto& want = c.at(name);
      EXPECT_NEAR(got->fmeasure, want.at("fmeasure").get<double>(), kTol) << name << " of '" << hyp << "'";
      EXPECT_NEAR(got->precision, want.at("precision").get<double>(), kTol) << name << " of '" << hyp << "'";
      EXPECT_NEAR(got->recall, want.at("recall").get<double>(), kTol) << name << " of '" << hyp << "'";
    }
  }
}

TEST(EvalMetrics, ChrfMatchesSacrebleu) {
  const auto v = load_vectors();
  std::vector<std::string> hyps;
  std::vector<std::vector<std::string>> refs;
  for (const auto& c : v.at("sentences")) {
    const auto hyp = c.at("hypothesis").get<std::string>();
    EXPECT_NEAR(sentence_chrf(hyp, refs_of(c)), c.at("chrf").get<double>(), kTol) << "'" << hyp << "'";
    hyps.push_back(hyp);
    refs.push_back(refs_of(c));
  }
  EXPECT_NEAR(corpus_chrf(hyps, refs), v.at("corpus").at("chrf").get<double>(), kTol);
}

TEST(EvalMetrics, Tokenizer13aMatchesSacrebleu) {
  const auto v = load_vectors();
  for (const auto& c : v.at("sentences")) {
    std::vector<std::string> inputs = {c.at("hypothesis").get<std::string>()};
    for (const auto& r : refs_of(c)) inputs.push_back(r);
    const auto want = c.at("tokenize_13a").get<std::vector<std::string>>();
    ASSERT_EQ(want.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i)
      EXPECT_EQ(tokenize_13a(text::encode(text::rstrip(text::decode(inputs[i])))), want[i]) << "'" << inputs[i] << "'";
  }
}

TEST(EvalMetrics, BleuMatchesSacrebleu) {
  const auto v = load_vectors();
  std::vector<std::string> hyps;
  std::vector<std::vector<std::string>> refs;
  for (const auto& c : v.at("sentences")) {
    const auto hyp = c.at("hypothesis").get<std::string>();
    EXPECT_NEAR(sentence_bleu(hyp, refs_of(c)), c.at("bleu").get<double>(), kTol) << "'" << hyp << "'";
    hyps.push_back(hyp);
    refs.push_back(refs_of(c));
  }
  EXPECT_NEAR(corpus_bleu(hyps, refs), v.at("corpus").at("bleu").get<double>(), kTol);
}

TEST(EvalMetrics, NngenBleuMatchesBNormScript) {
  const auto v = load_vectors();
  int n = 0;
  for (const auto& c : v.at("sentences")) {
    if (c.at("b_norm").is_null()) continue;
    const auto hyp = c.at("hypothesis").get<std::string>();
    EXPECT_NEAR(nngen_bleu(hyp, refs_of(c)), c.at("b_norm").get<double>(), kTol) << "'" << hyp << "'";
    ++n;
  }
  EXPECT_GE(n, 20) << "B-Norm values missing from vectors.json";
}

// Hand-checkable: identical strings score 100 (BLEU, chrF, B-Norm) and 1 (ROUGE); disjoint ones 0.
TEST(EvalMetrics, IdentityAndDisjoint) {
  const std::vector<std::string> ref = {"the quick brown fox jumps over the lazy dog"};
  EXPECT_DOUBLE_EQ(sentence_bleu(ref[0], ref), 100.0);
  EXPECT_DOUBLE_EQ(sentence_chrf(ref[0], ref), 100.0);
  EXPECT_NEAR(nngen_bleu(ref[0], ref), 100.0, 1e-9);
  EXPECT_DOUBLE_EQ(rouge_multi(ref, ref[0]).rougeL.fmeasure, 1.0);
  EXPECT_EQ(sentence_bleu("zz yy", ref), 0.0);
  EXPECT_EQ(rouge_multi(ref, "zz yy").rouge1.fmeasure, 0.0);
}

TEST(EvalMetrics, PythonStringSemantics) {
  EXPECT_EQ(text::encode(text::lower(text::decode("ÀÉÎ ΟΔΟΣ ΣΑ İ"))), "àéî οδος σα i\xCC\x87");
  EXPECT_EQ(text::split(text::decode("a\x1f"
                                     "b\xC2\xA0"
                                     "c\xE3\x80\x80"
                                     "d"))
                .size(),
            4u);
  EXPECT_TRUE(text::is_alnum(U'é'));
  EXPECT_TRUE(text::is_alnum(U'５'));
  EXPECT_FALSE(text::is_alnum(U'、'));
  EXPECT_EQ(rouge_tokenize("Hello, WORLD! naïve \u212A"),
            (std::vector<std::string>{"hello", "world", "na", "ve", "k"}));
}

}  // namespace
}  // namespace pocketlm
