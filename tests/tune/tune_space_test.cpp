// The tune search space: the default, the YAML reader's errors (file, line, field), the expansion; the planner's
// filter on stories260K.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "gguf/reader.h"
#include "quant/quantize_model.h"
#include "test_paths.h"
#include "tune/tune_fit.h"
#include "tune/tune_space.h"

namespace pocketlm {
namespace {

TEST(TuneSpace, DefaultExpandsToDistinctFileSafeIds) {
  auto c = expand_tune_space(default_tune_space());
  ASSERT_TRUE(c.ok()) << c.error().message();
  const TuneSpace d = default_tune_space();
  // Every target x method x hot x rule set x KV type: Q8_0 has no float base, so nothing collapses.
  EXPECT_EQ(c->size(), d.targets.size() * d.methods.size() * d.hot_f16.size() * d.rule_sets.size() * d.kv_types.size());
  std::set<std::string> ids;
  for (const auto& x : *c) {
    EXPECT_TRUE(ids.insert(x.id).second) << x.id;
    EXPECT_EQ(x.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-."), std::string::npos) << x.id;
    EXPECT_EQ(x.id.rfind(x.file_id, 0), 0u) << x.id;
  }
}

TEST(TuneSpace, StepsUpResolveAgainstEachTarget) {
  EXPECT_EQ(type_steps_up(GgmlType::Q4_K, 1), GgmlType::Q5_K);
  EXPECT_EQ(type_steps_up(GgmlType::Q4_K, 2), GgmlType::Q6_K);
  EXPECT_EQ(type_steps_up(GgmlType::Q4_0, 1), GgmlType::Q5_0);
  EXPECT_EQ(type_steps_up(GgmlType::Q4_0_G64, 1), GgmlType::Q5_0);
  EXPECT_EQ(type_steps_up(GgmlType::Q8_0, 1), GgmlType::F16);
  EXPECT_EQ(type_steps_up(GgmlType::F16, 3), GgmlType::F16);
  auto s = parse_tune_space(
      "targets: [Q4_K_M, q4_0]\nmethods: [rtn]\nrules:\n  - name: attn-up\n"
      "    rules: [{pattern: 'attn_v', type: '+1'}, {pattern: 'ffn_down', type: q8_0}]\n",
      "s.yaml");
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto c = expand_tune_space(*s);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->size(), 4u);  // (none, attn-up) x 2 targets
  EXPECT_EQ((*c)[0].id, "q4_k_m.rtn.kv-f16");
  EXPECT_TRUE((*c)[0].rules.empty());
  EXPECT_EQ((*c)[1].id, "q4_k_m.rtn.attn-up.kv-f16");
  EXPECT_EQ((*c)[1].rules[0].second, "q5_K");
  EXPECT_EQ((*c)[1].rules[1].second, "q8_0");
  EXPECT_EQ((*c)[3].rules[0].second, "q5_0");
}

TEST(TuneSpace, FloatTargetsKeepOnlyRtnAndKvTypesAreNormalized) {
  auto s =
      parse_tune_space("targets: [F16, q8_0]\nmethods: [rtn, imatrix, gptq]\nkv_types: [f16, q8_0, q4]\n", "s.yaml");
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto c = expand_tune_space(*s);
  ASSERT_TRUE(c.ok());
  // F16: rtn only (x2 rule sets x 3 KV types); q8_0: 3 methods x 2 x 3.
  EXPECT_EQ(c->size(), 6u + 18u);
  std::set<std::string> kv;
  for (const auto& x : *c) kv.insert(x.kv_type);
  EXPECT_EQ(kv, (std::set<std::string>{"f16", "q8", "q4"}));
}

void expect_error(const std::string& yaml, const std::string& part) {
  auto s = parse_tune_space(yaml, "space.yaml");
  ASSERT_FALSE(s.ok()) << yaml;
  EXPECT_NE(s.error().message().find(part), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().message().rfind("space.yaml", 0), 0u) << s.error().message();
}

TEST(TuneSpace, BadFilesAreErrorsNamingFileLineAndField) {
  expect_error("", "the space file is empty");
  expect_error("   \n# only a comment\n", "the space file is empty");
  expect_error("- a\n- b\n", "expected a mapping");
  expect_error("targets: Q4_K_M\n", "space.yaml:1: field 'targets': expected a list");
  expect_error("targets: []\n", "field 'targets': the list is empty");
  expect_error("methods: [rtn]\ntargets: [Q4_K_M, Q9_X]\n",
               "space.yaml:2: field 'targets': 'Q9_X' is neither a recipe");
  expect_error("targets: [Q4_K_M, q4_k_m]\n", "'q4_k_m' is listed twice");
  expect_error("methods: [rtn, magic]\n", "field 'methods'");
  expect_error("kv_types: [f16, q5]\n", "field 'kv_types': 'q5' is not a KV cache type");
  expect_error("kv_types: [f32]\n", "field 'kv_types': 'f32'");
  expect_error("hot_f16: [maybe]\n", "field 'hot_f16': 'maybe' is not true or false");
  expect_error("target: [Q4_K_M]\n", "space.yaml:1: unknown field 'target'");
  expect_error("rules:\n  - name: x\n    rules: [{pattern: '(', type: q8_0}]\n",
               "space.yaml:3: rule set 'x': field 'pattern'");
  expect_error("rules:\n  - name: x\n    rules: [{pattern: 'a', type: q9}]\n", "field 'type': 'q9'");
  expect_error("rules:\n  - name: x\n    rules: [{pattern: 'a', type: '+7'}]\n", "field 'type': '+7'");
  expect_error("rules:\n  - name: x\n    rules: []\n", "rule set 'x': field 'rules': expected a non-empty list");
  expect_error("rules:\n  - rules: [{pattern: a, type: q8_0}]\n", "each rule set needs a non-empty 'name'");
  expect_error("rules:\n  - {name: none, rules: [{pattern: a, type: q8_0}]}\n", "reserved");
  expect_error(
      "rules:\n  - {name: x, rules: [{pattern: a, type: q8_0}]}\n  - {name: X, rules: [{pattern: a, type: q8_0}]}\n",
      "defined twice");
  expect_error("targets: [Q4_K_M\n", "not valid YAML");
  expect_error("include_no_rules: false\nrules: []\n", "no rule set left");
}

TEST(TuneSpace, MissingFileIsAnError) {
  auto s = read_tune_space("/nonexistent/space.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("/nonexistent/space.yaml: cannot read"), std::string::npos);
}

TEST(TuneFit, BudgetLeavesOutWhatDoesNotFitAndSaysWhatTheSmallestNeeds) {
  if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  auto s = parse_tune_space(
      "targets: [F32, Q8_0, q4_0]\nmethods: [rtn]\nkv_types: [f16, q4]\ninclude_no_rules: true\n"
      "rules: [{name: attn-f16, rules: [{pattern: 'attn_', type: f16}]}]\n",
      "s.yaml");
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto c = expand_tune_space(*s);
  ASSERT_TRUE(c.ok());
  FitOptions o;
  o.n_ctx = 128;
  o.budget_bytes = uint64_t{1} << 40;
  auto all = fit_candidates(test::stories_path().string(), *c, o);
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->size(), c->size());
  uint64_t lo = ~uint64_t{0}, hi = 0, f32 = 0, q4 = ~uint64_t{0};
  size_t planned = 0;
  for (const auto& f : *all) {
    // stories260K's heads of 8 cannot hold q4 KV rows (blocks of 32): refused, with the runtime's reason.
    if (f.candidate.kv_type == "q4") {
      EXPECT_FALSE(f.fits);
      EXPECT_NE(f.refused.find("head size 8 is not a multiple of 32"), std::string::npos) << f.refused;
      continue;
    }
    EXPECT_TRUE(f.fits && f.refused.empty()) << f.candidate.id << ": " << f.refused;
    ++planned;
    lo = std::min(lo, f.peak_rss_bytes);
    hi = std::max(hi, f.peak_rss_bytes);
    if (f.candidate.id == "f32.rtn.kv-f16") f32 = f.weights_bytes;
    if (f.candidate.id == "q4_0.rtn.kv-f16") q4 = f.weights_bytes;
  }
  EXPECT_GT(f32, 3 * q4);  // the dry-run plan's bytes: F32 weights against q4_0's
  o.budget_bytes = (lo + hi) / 2;
  auto some = fit_candidates(test::stories_path().string(), *c, o);
  ASSERT_TRUE(some.ok());
  size_t fitting = 0;
  for (const auto& f : *some) {
    if (!f.refused.empty()) continue;
    EXPECT_EQ(f.fits, f.peak_rss_bytes <= o.budget_bytes);
    fitting += f.fits;
  }
  EXPECT_GT(fitting, 0u);
  EXPECT_LT(fitting, planned);
  o.budget_bytes = lo - 1;
  auto none = fit_candidates(test::stories_path().string(), *c, o);
  ASSERT_TRUE(none.ok());
  for (const auto& f : *none) EXPECT_FALSE(f.fits);
  const std::string msg = nothing_fits_message(*none, o);
  EXPECT_NE(msg.find("no candidate fits the budget"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the smallest candidate, q4_0.rtn.kv-f16, needs"), std::string::npos) << msg;
}

}  // namespace
}  // namespace pocketlm

namespace pocketlm {
namespace {

TEST(TuneSpace, RuleTypesFallBackPerTensorAsRecipesDo) {
  if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  auto base = GgufFile::open(test::stories_path().string());
  ASSERT_TRUE(base.ok());
  TuneCandidate c;
  c.target = "Q4_K_M";
  c.rule_set = "x";
  // stories260K's attention rows are 64 wide: q5_K (blocks of 256) falls back to q5_1 on each; q8_0 fits as it is.
  c.rules = {{"attn_q\\.weight$", "q5_K"}, {"attn_k\\.weight$", "q8_0"}};
  QuantizeOptions o;
  ASSERT_TRUE(tune_quantize_options(c, *base, o).ok());
  ASSERT_EQ(o.rules.size(), 5u + 1u);  // one exact-name rule per layer's attn_q, then the q8_0 rule unchanged
  EXPECT_EQ(o.rules[0].pattern, "^blk\\.0\\.attn_q\\.weight$");
  EXPECT_EQ(o.rules[0].type, GgmlType::Q5_1);
  EXPECT_EQ(o.rules[5].pattern, "attn_k\\.weight$");
  EXPECT_EQ(o.rules[5].type, GgmlType::Q8_0);
  auto plan = plan_quantization(*base, o);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  for (const auto& t : plan->tensors) {
    if (t.name.find("attn_q.weight") != std::string::npos) {
      EXPECT_EQ(t.type, GgmlType::Q5_1) << t.name;
    }
    if (t.name.find("attn_k.weight") != std::string::npos) {
      EXPECT_EQ(t.type, GgmlType::Q8_0) << t.name;
    }
  }
}

}  // namespace
}  // namespace pocketlm
