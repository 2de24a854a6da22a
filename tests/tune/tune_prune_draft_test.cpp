// The prune and draft axes of the tune space: the YAML reader's errors (file, line, field), the expansion, the
// planner's size of a pruned candidate against the file pruning and quantizing actually write (stories260K), and
// each draft choice's memory.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <set>

#include "gguf/reader.h"
#include "quant/quantize_model.h"
#include "test_paths.h"
#include "tune/tune_fit.h"
#include "tune/tune_job.h"
#include "tune/tune_space.h"

namespace pocketlm {
namespace {
namespace fs = std::filesystem;

void expect_error(const std::string& yaml, const std::string& part) {
  auto s = parse_tune_space(yaml, "space.yaml");
  ASSERT_FALSE(s.ok()) << yaml;
  EXPECT_NE(s.error().message().find(part), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().message().rfind("space.yaml", 0), 0u) << s.error().message();
}

TEST(TuneSpace, PruneAndDraftAxesParseAndExpand) {
  const TuneSpace d = default_tune_space();
  ASSERT_EQ(d.prune.size(), 1u);  // pruning is off by default
  EXPECT_TRUE(d.prune[0].none());
  ASSERT_EQ(d.drafts.size(), 3u);
  EXPECT_EQ(d.drafts[0].name, "none");
  EXPECT_EQ(d.drafts[1].flags(), "--lookup");
  EXPECT_EQ(d.drafts[2].flags(), "--draft-self q4_0");

  auto s = parse_tune_space(
      "targets: [q4_0, Q8_0]\nmethods: [rtn, imatrix]\nrules: []\n"
      "prune: [none, {drop: 1}, {drop_layers: [3, 1], ffn_keep: 0.75, repair: true}, {heads_keep: 0.5}]\n"
      "drafts: [none, lookup, {self: q4_0}, {self: q2_K, layers: 2}]\n",
      "space.yaml");
  ASSERT_TRUE(s.ok()) << s.error().message();
  ASSERT_EQ(s->prune.size(), 4u);
  EXPECT_EQ(s->prune[1].name, "drop1");
  EXPECT_EQ(s->prune[2].name, "dropl1_3-ffn75-rep");
  EXPECT_EQ(s->prune[2].drop_layers, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(s->prune[3].name, "heads50");
  ASSERT_EQ(s->drafts.size(), 4u);
  EXPECT_EQ(s->drafts[3].name, "self-q2_K-l2");
  EXPECT_EQ(s->drafts[3].flags(), "--draft-self q2_K --draft-layers 2");
  // Drafts are not candidates; pruned levels combine with rtn only: 2 targets x (2 methods unpruned + 3 levels rtn).
  auto c = expand_tune_space(*s);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->size(), 2u * (2 + 3));
  std::set<std::string> ids;
  for (const auto& x : *c) {
    ids.insert(x.id);
    if (!x.prune.none()) {
      EXPECT_EQ(x.method, "rtn") << x.id;
      EXPECT_NE(x.file_id.find("." + x.prune.name), std::string::npos) << x.id;
    }
  }
  EXPECT_EQ(ids.size(), c->size());
  EXPECT_TRUE(ids.count("q4_0.rtn.drop1.kv-f16"));
  EXPECT_TRUE(ids.count("q8_0.rtn.heads50.kv-f16"));
}

TEST(TuneSpace, BadPruneAndDraftEntriesNameFileLineAndField) {
  expect_error("drafts: [none, medusa]\n", "space.yaml:1: field 'drafts': 'medusa' is not a draft choice");
  expect_error("drafts:\n  - {self: f16}\n", "space.yaml:2: field 'drafts': self: 'f16' is not a quantized type");
  expect_error("drafts: [{self: q9_9}]\n", "self: 'q9_9'");
  expect_error("drafts: [{self: q4_0, layers: 0}]\n", "field 'drafts': layers: '0' is not a whole number");
  expect_error("drafts: [{self: q4_0, depth: 2}]\n", "field 'drafts': unknown key 'depth'");
  expect_error("drafts: [{model: d.gguf}]\n", "field 'drafts': expected a draft choice");
  expect_error("drafts: [lookup, lookup]\n", "'lookup' is listed twice");
  expect_error("drafts: []\n", "field 'drafts': expected a non-empty list");
  expect_error("prune: [none, {ffn_keep: 1.5}]\n", "space.yaml:1: field 'prune': ffn_keep: '1.5' is not a fraction");
  expect_error("prune:\n  - {heads_keep: 0}\n", "space.yaml:2: field 'prune': heads_keep: '0' is not a fraction");
  expect_error("prune: [{ffn_keep: half}]\n", "ffn_keep: 'half' is not a fraction");
  expect_error("prune: [{drop: 0}]\n", "field 'prune': drop: '0' is not a whole number of at least 1");
  expect_error("prune: [{drop: 1, drop_layers: [2]}]\n", "not both");
  expect_error("prune: [{drop_layers: [2, 2]}]\n", "block 2 is listed twice");
  expect_error("prune: [{width: 2}]\n", "field 'prune': unknown key 'width'");
  expect_error("prune: [{repair: true}]\n", "the level prunes nothing");
  expect_error("prune: [{repair: maybe, drop: 1}]\n", "repair: expected true or false");
  expect_error("prune: [none, none]\n", "'none' is listed twice");
  expect_error("prune: [{drop: 1}, {drop: 1}]\n", "'drop1' is listed twice");
  expect_error("prune: [some]\n", "field 'prune': 'some' is not a prune level");
}

class TuneFitPruneDraft : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
    calib_ = test::shared_dir() / "testdata/text/tinystories-val.dev.txt";
    if (!fs::exists(calib_)) GTEST_SKIP() << calib_ << " missing";
    dir_ = fs::temp_directory_path() / ("tune_prune_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_, calib_;
};

// The planner sizes a pruned-then-quantized candidate before anything is built; pruning and quantizing it then
// write exactly the predicted tensor bytes.
TEST_F(TuneFitPruneDraft, PrunedCandidateIsSizedBeforeItIsBuilt) {
  auto s = parse_tune_space(
      "targets: [q4_0, Q8_0]\nmethods: [rtn]\nrules: []\nprune: [none, {drop: 1, ffn_keep: 0.5}, {heads_keep: 0.5}]\n",
      "space.yaml");
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto cands = expand_tune_space(*s);
  ASSERT_TRUE(cands.ok());
  FitOptions o;
  o.n_ctx = 128;
  o.budget_bytes = uint64_t{1} << 40;
  auto fits = fit_candidates(test::stories_path().string(), *cands, o);
  ASSERT_TRUE(fits.ok()) << fits.error().message();
  ASSERT_EQ(fits->size(), 6u);
  TuneConfig cfg;
  cfg.base = test::stories_path().string();
  cfg.calib = calib_.string();
  cfg.calib_tokens = 512;
  cfg.calib_ctx = 128;
  std::map<std::string, uint64_t> unpruned;
  for (const auto& f : *fits) {
    ASSERT_TRUE(f.refused.empty()) << f.candidate.id << ": " << f.refused;
    ASSERT_TRUE(f.plan);
    if (f.candidate.prune.none()) {
      unpruned[f.candidate.target] = f.weights_bytes;
      continue;
    }
    // Smaller than the same target unpruned, and the pruned shape: one block fewer, half the FFN or the heads.
    EXPECT_LT(f.weights_bytes, unpruned.at(f.candidate.target)) << f.candidate.id;
    // Build it: prune (calibration scores), then quantize with the candidate's options.
    ASSERT_TRUE(prune_for_tune(dir_.string(), cfg, f.candidate.prune, 1).ok());
    const std::string pruned = tune_pruned_path(dir_.string(), f.candidate.prune);
    auto in = GgufFile::open(pruned);
    ASSERT_TRUE(in.ok()) << in.error().message();
    auto block_count = in->get_int("llama.block_count");
    ASSERT_TRUE(block_count.ok());
    EXPECT_EQ(*block_count, f.plan->config.n_layer) << f.candidate.id;
    QuantizeOptions q;
    q.progress = false;
    q.n_threads = 1;
    ASSERT_TRUE(tune_quantize_options(f.candidate, *in, q).ok());
    auto plan = plan_quantization(*in, q);
    ASSERT_TRUE(plan.ok()) << plan.error().message();
    const std::string out = (dir_ / (f.candidate.file_id + ".gguf")).string();
    ASSERT_TRUE(quantize_model(*in, *plan, q, out).ok());
    auto written = GgufFile::open(out);
    ASSERT_TRUE(written.ok());
    uint64_t tensor_bytes = 0;
    for (const auto& t : written->tensors()) tensor_bytes += t.nbytes;
    EXPECT_EQ(f.weights_bytes, tensor_bytes) << f.candidate.id;
    const double file = static_cast<double>(fs::file_size(out));
    EXPECT_NEAR(static_cast<double>(f.weights_bytes + f.metadata_bytes), file, 0.02 * file) << f.candidate.id;
  }
}

TEST_F(TuneFitPruneDraft, DraftsAddTheirMemoryAndASelfDraftMustBeSmaller) {
  auto s = parse_tune_space("targets: [Q8_0, q4_0]\nmethods: [rtn]\nrules: []\n", "space.yaml");
  ASSERT_TRUE(s.ok());
  auto cands = expand_tune_space(*s);
  ASSERT_TRUE(cands.ok());
  FitOptions o;
  o.n_ctx = 128;
  o.budget_bytes = uint64_t{1} << 40;
  auto fits = fit_candidates(test::stories_path().string(), *cands, o);
  ASSERT_TRUE(fits.ok()) << fits.error().message();
  const std::vector<TuneDraft> drafts = {make_tune_draft(TuneDraft::Kind::None),
                                         make_tune_draft(TuneDraft::Kind::Lookup),
                                         make_tune_draft(TuneDraft::Kind::Self, GgmlType::Q4_0),
                                         make_tune_draft(TuneDraft::Kind::Self, GgmlType::Q4_0, 2),
                                         make_tune_draft(TuneDraft::Kind::Self, GgmlType::Q4_0, 99),
                                         make_tune_draft(TuneDraft::Kind::Self, GgmlType::Q8_0)};
  const CandidateFit* q8 = nullptr;
  const CandidateFit* q4 = nullptr;
  for (const auto& f : *fits) (f.candidate.target == "Q8_0" ? q8 : q4) = &f;
  ASSERT_TRUE(q8 && q4);
  auto d8 = fit_drafts(*q8, drafts, o);
  ASSERT_EQ(d8.size(), drafts.size());
  EXPECT_EQ(d8[0].draft_bytes, 0u);
  EXPECT_EQ(d8[1].draft_bytes, 0u);  // lookup: no model
  EXPECT_EQ(d8[1].peak_rss_bytes, q8->peak_rss_bytes);
  EXPECT_TRUE(d8[2].refused.empty()) << d8[2].refused;
  EXPECT_GT(d8[2].draft_bytes, 0u);
  EXPECT_EQ(d8[2].peak_rss_bytes, q8->peak_rss_bytes + d8[2].draft_bytes);
  EXPECT_LT(d8[3].draft_bytes, d8[2].draft_bytes);  // the first 2 of 5 layers
  EXPECT_NE(d8[4].refused.find("the candidate has 5"), std::string::npos) << d8[4].refused;
  // A q8_0 self-draft of a q4_0 candidate is no smaller: refused, as the runtime refuses it (a q4_0 one is smaller:
  // the self-draft requantizes the embedding and head too).
  auto d4 = fit_drafts(*q4, drafts, o);
  EXPECT_TRUE(d4[2].refused.empty()) << d4[2].refused;
  EXPECT_NE(d4[5].refused.find("no smaller than the candidate"), std::string::npos) << d4[5].refused;
  EXPECT_FALSE(d4[5].fits);
  // A budget the candidate fits but not with its self-draft.
  FitOptions tight = o;
  tight.budget_bytes = q8->peak_rss_bytes + d8[2].draft_bytes / 2;
  CandidateFit f = *q8;
  f.fits = true;
  auto dt = fit_drafts(f, drafts, tight);
  EXPECT_TRUE(dt[1].fits);
  EXPECT_FALSE(dt[2].fits);
}

}  // namespace
}  // namespace pocketlm
