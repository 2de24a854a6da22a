// pocketlm quantize's library (quant/quantize_model.h) on stories260K, the one truly unquantized (F32) model:
// plans (recipes, single types, rules, overrides, fallbacks), the written files (metadata, bytes that decode to
// the measured error), models that load and generate, and every bad input a clear error with no output file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "formats/dequantize.h"
#include "model/model.h"
#include "quant/model_agreement.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class QuantizeModel : public test::StoriesQuantizeTest {
 protected:
  QuantizeModel() : StoriesQuantizeTest("plm_quantize") {}
  QuantizePlan plan(QuantizeOptions o) {
    auto p = plan_quantization(*in_, o);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    return p.ok() ? *p : QuantizePlan{};
  }
  const QuantizeTensorPlan& find(const QuantizePlan& p, const std::string& name) {
    for (const auto& t : p.tensors)
      if (t.name == name) return t;
    ADD_FAILURE() << name << " not in the plan";
    return p.tensors.front();
  }
  // Writes `target` to dir_/name and returns the path ("" on failure, with the test failed).
  std::string write(const std::string& target, const std::string& name, QuantizeOptions o = {}) {
    o.target = target;
    o.progress = false;
    o.n_threads = 2;
    auto p = plan_quantization(*in_, o);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok()) return "";
    const std::string out = (dir_ / name).string();
    auto r = quantize_model(*in_, *p, o, out);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    if (!r.ok()) return "";
    last_ = *r;
    return out;
  }
  std::vector<std::string> dir_entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    return names;
  }
  QuantizeResult last_;
};

TEST_F(QuantizeModel, RecipeQ4KMPlanSaysWhereTheStoriesWidthsForceFallbacks) {
  QuantizeOptions o;
  o.target = "q4_k_m";
  const QuantizePlan p = plan(o);
  EXPECT_TRUE(p.is_recipe);
  EXPECT_EQ(p.target, "Q4_K_M");
  EXPECT_EQ(p.ftype, 15u);
  // 64-wide rows: q4_K's 256-block does not fit -> q5_0, and the plan says why.
  const auto& q = find(p, "blk.0.attn_q.weight");
  EXPECT_TRUE(q.fallback);
  EXPECT_EQ(q.type, GgmlType::Q5_0);
  EXPECT_NE(q.reason.find("row width 64 is not a multiple of 256"), std::string::npos) << q.reason;
  // ffn_down rows are 172 wide: no 32-block either -> f16.
  const auto& down = find(p, "blk.0.ffn_down.weight");
  EXPECT_TRUE(down.fallback);
  EXPECT_EQ(down.type, GgmlType::F16);
  EXPECT_NE(down.reason.find("nor of 32"), std::string::npos) << down.reason;
  // The output head wanted q6_K: q8_0 instead.
  const auto& out = find(p, "output.weight");
  EXPECT_EQ(out.type, GgmlType::Q8_0);
  EXPECT_TRUE(out.fallback);
  // Norms are kept.
  const auto& norm = find(p, "blk.0.attn_norm.weight");
  EXPECT_FALSE(norm.quantize);
  EXPECT_EQ(norm.type, GgmlType::F32);
  EXPECT_GT(p.n_fallback(), 30);
  const std::string table = format_quantize_plan(p);
  EXPECT_NE(table.find("FALLBACK: row width 172"), std::string::npos) << table;
  EXPECT_NE(table.find("recipe Q4_K_M (general.file_type 15)"), std::string::npos) << table;
}

TEST_F(QuantizeModel, SingleTypesAndPure) {
  QuantizeOptions o;
  o.target = "q4_K";  // not a recipe: every quantizable weight q4_K (or its fallback)
  QuantizePlan p = plan(o);
  EXPECT_FALSE(p.is_recipe);
  EXPECT_EQ(p.ftype, 14u);
  EXPECT_EQ(find(p, "output.weight").type, GgmlType::Q5_0);  // no q6_K bump for a single type
  EXPECT_EQ(find(p, "token_embd.weight").type, GgmlType::Q5_0);
  o.target = "Q4_0";  // the recipe: output head q6_K wanted, q8_0 as 64 % 256 != 0
  p = plan(o);
  EXPECT_TRUE(p.is_recipe);
  EXPECT_EQ(find(p, "output.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(find(p, "blk.1.attn_k.weight").type, GgmlType::Q4_0);
  o.pure = true;  // --pure: the recipe's base type everywhere
  p = plan(o);
  EXPECT_FALSE(p.is_recipe);
  EXPECT_EQ(find(p, "output.weight").type, GgmlType::Q4_0);
  EXPECT_EQ(p.ftype, 2u);
}

TEST_F(QuantizeModel, RulesAndOverridesApplyInOrder) {
  auto rules = parse_quantize_rules(R"([{"pattern": "attn_(q|k)\\.weight$", "type": "q8_0"},
                                        {"pattern": "blk\\.0\\.", "type": "f16"},
                                        {"pattern": "attn_q", "type": "q4_1"}])",
                                    "rules.json");
  ASSERT_TRUE(rules.ok()) << rules.error().message();
  QuantizeOptions o;
  o.target = "Q4_0";
  o.rules = *rules;
  o.output_tensor_type = GgmlType::F16;
  o.token_embedding_type = GgmlType::Q8_0;
  const QuantizePlan p = plan(o);
  EXPECT_EQ(find(p, "blk.0.attn_q.weight").type, GgmlType::Q8_0);  // first match wins
  EXPECT_EQ(find(p, "blk.0.attn_v.weight").type, GgmlType::F16);
  EXPECT_EQ(find(p, "blk.2.attn_q.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(find(p, "blk.2.attn_v.weight").type, GgmlType::Q4_0);  // no rule: the recipe
  EXPECT_EQ(find(p, "output.weight").type, GgmlType::F16);
  EXPECT_EQ(find(p, "token_embd.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(find(p, "blk.0.attn_norm.weight").type, GgmlType::F32);  // rules never touch norms
  EXPECT_NE(find(p, "blk.0.attn_v.weight").reason.find("rules.json: rule 2"), std::string::npos);
}

TEST_F(QuantizeModel, BadTargetsRulesAndImatricesAreClearErrors) {
  QuantizeOptions o;
  o.target = "Q4_K_X";
  auto p = plan_quantization(*in_, o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("unknown quantization type or recipe 'Q4_K_X'"), std::string::npos);
  EXPECT_NE(p.error().message().find("Q4_K_M"), std::string::npos);
  o.target = "iq2_xxs";  // a ggml type pocketlm cannot write
  p = plan_quantization(*in_, o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("cannot write type iq2_xxs"), std::string::npos) << p.error().message();

  auto r =
      parse_quantize_rules(R"([{"pattern": "ok", "type": "q8_0"}, {"pattern": "attn_(q", "type": "q4_0"}])", "r.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("r.json: rule 2: bad regular expression 'attn_(q'"), std::string::npos)
      << r.error().message();
  r = parse_quantize_rules(R"([{"pattern": "ok", "type": "q4_9"}])", "r.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("r.json: rule 1: unknown tensor type 'q4_9'"), std::string::npos)
      << r.error().message();
  r = parse_quantize_rules(R"([{"pattern": "ok", "typ": "q4_0"}])", "r.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("rule 1: unknown key 'typ'"), std::string::npos) << r.error().message();
  r = parse_quantize_rules(R"([{"pattern": "ok", "type": "q4_0"},)", "r.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("r.json: not valid JSON"), std::string::npos) << r.error().message();

  // A rule asking for a type whose block does not divide the rows: an error naming rule, tensor and widths.
  auto rules = parse_quantize_rules(R"([{"pattern": "ffn_down", "type": "q4_K"}])", "r.json");
  ASSERT_TRUE(rules.ok());
  o.target = "Q8_0";
  o.rules = *rules;
  p = plan_quantization(*in_, o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("r.json: rule 1 ('ffn_down'): tensor 'blk.0.ffn_down.weight' [172, 64] has rows "
                                     "of 172 values, not a multiple of q4_K's block of 256"),
            std::string::npos)
      << p.error().message();
  o.rules.clear();

  // An imatrix for another model: the first mismatch named.
  Imatrix im;
  ImatrixEntry e;
  e.name = "blk.0.attn_q.weight";
  e.n_cols = 576;
  e.sums.assign(576, 1.0f);
  e.counts = {10.0f};
  im.entries.push_back(e);
  o.imatrix = &im;
  o.imatrix_path = "other.imatrix";
  p = plan_quantization(*in_, o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("imatrix other.imatrix: "), std::string::npos) << p.error().message();
  EXPECT_NE(p.error().message().find("blk.0.attn_q.weight"), std::string::npos) << p.error().message();
}

TEST_F(QuantizeModel, Q8_0MatchesTheF32ModelAndTheTableMatchesTheFile) {
  const std::string out = write("q8_0", "q8_0.gguf");
  ASSERT_FALSE(out.empty());
  auto q = GgufFile::open(out);
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ(*q->get_int("general.file_type"), 7);
  EXPECT_EQ(*q->get_int("general.quantization_version"), 2);
  EXPECT_EQ(*q->get_string("general.architecture"), "llama");
  EXPECT_EQ(q->get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  EXPECT_EQ(q->tensor("blk.0.attn_q.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(q->tensor("blk.0.ffn_down.weight")->type, GgmlType::F16);
  EXPECT_EQ(q->tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);
  // The reported RMSE is the file's: decode blk.3.ffn_up from the output and compare with the input.
  const GgufTensor* a = in_->tensor("blk.3.ffn_up.weight");
  const GgufTensor* b = q->tensor("blk.3.ffn_up.weight");
  std::vector<float> y(static_cast<size_t>(b->n_elements()));
  dequantize_row(b->type, b->data, y.data(), b->n_elements());
  double e = 0;
  const float* x = reinterpret_cast<const float*>(a->data);
  for (size_t i = 0; i < y.size(); ++i) e += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
  const double rmse = std::sqrt(e / static_cast<double>(y.size()));
  bool seen = false;
  for (const auto& t : last_.tensors) {
    if (t.name != "blk.3.ffn_up.weight") continue;
    seen = true;
    EXPECT_NEAR(t.rmse, rmse, 1e-6 * rmse + 1e-12);
    EXPECT_GT(t.rmse, 0.0);
    EXPECT_LT(t.rel_rmse, 0.01);
  }
  EXPECT_TRUE(seen);

  auto base = Model::load(test::stories_path().string());
  auto m = Model::load(out);
  ASSERT_TRUE(base.ok() && m.ok()) << (m.ok() ? "" : m.error().message());
  const std::string prompt = "Once upon a time, there was a little";
  const auto ga = test::greedy(**base, prompt, 16), gb = test::greedy(**m, prompt, 16);
  EXPECT_EQ(ga, gb) << "F32: " << (*base)->tokenizer().decode(ga) << "\nq8_0: " << (*m)->tokenizer().decode(gb);
  const double agree = test::top1_agreement(**base, **m, test::tinystories_sample());
  std::printf("[quantize] stories260K q8_0 vs F32: top-1 agreement %.2f %%\n", 100 * agree);
  EXPECT_GE(agree, 0.95);
}

TEST_F(QuantizeModel, Q4_0AndQ4KMLoadAndGenerate) {
  auto base = Model::load(test::stories_path().string());
  ASSERT_TRUE(base.ok());
  for (const char* target : {"q4_0", "Q4_K_M", "q4_K"}) {
    SCOPED_TRACE(target);
    const std::string out = write(target, std::string(target) + ".gguf");
    ASSERT_FALSE(out.empty());
    auto m = Model::load(out);
    ASSERT_TRUE(m.ok()) << m.error().message();
    const auto g = test::greedy(**m, "Once upon a time", 16);
    ASSERT_EQ(g.size(), 16u);
    const std::string text = (*m)->tokenizer().decode(g);
    EXPECT_FALSE(text.empty());
    const double agree = test::top1_agreement(**base, **m, test::tinystories_sample());
    std::printf("[quantize] stories260K %s vs F32: %s, top-1 agreement %.2f %%, continuation: %s\n", target,
                std::to_string(fs::file_size(out)).c_str(), 100 * agree, text.c_str());
    EXPECT_GE(agree, 0.6);  // a 4-bit 260K-parameter model still mostly agrees
  }
}

TEST_F(QuantizeModel, ImportanceWeightsTheSearchAndTheError) {
  // An importance matrix of stories260K's shape that weighs column j of every weight by (j % 7 + 1)^2.
  Imatrix im;
  for (const auto& t : in_->tensors()) {
    if (t.n_dims != 2 || t.name.find("_norm") != std::string::npos) continue;
    ImatrixEntry e;
    e.name = t.name;
    e.n_cols = t.ne[0];
    for (int64_t j = 0; j < t.ne[0]; ++j) e.sums.push_back(static_cast<float>((j % 7 + 1) * (j % 7 + 1)) * 100.0f);
    e.counts = {100.0f};
    im.entries.push_back(e);
  }
  std::sort(im.entries.begin(), im.entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  QuantizeOptions with;
  with.imatrix = &im;
  with.imatrix_path = "synthetic.imatrix";
  const std::string a = write("q4_0", "with.gguf", with);
  ASSERT_FALSE(a.empty());
  const QuantizeResult rw = last_;
  const std::string b = write("q4_0", "without.gguf");
  ASSERT_FALSE(b.empty());
  const QuantizeResult rn = last_;
  auto f = GgufFile::open(a);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_string("quantize.imatrix.file"), "synthetic.imatrix");
  EXPECT_EQ(*f->get_int("quantize.imatrix.entries_count"), static_cast<int64_t>(im.entries.size()));
  // Same tensor, both files: the importance-weighted error is lower when the search was told the weights.
  auto g = GgufFile::open(b);
  const std::string name = "blk.1.attn_output.weight";
  const GgufTensor* x = in_->tensor(name);
  auto weighted = [&](const GgufTensor* t) {
    std::vector<float> y(static_cast<size_t>(t->n_elements()));
    dequantize_row(t->type, t->data, y.data(), t->n_elements());
    const float* xv = reinterpret_cast<const float*>(x->data);
    double e = 0, ws = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double w = static_cast<double>((i % 64 % 7 + 1) * (i % 64 % 7 + 1));
      e += w * (xv[i] - y[i]) * (xv[i] - y[i]);
      ws += w;
    }
    return std::sqrt(e / ws);
  };
  const double ew = weighted(f->tensor(name)), en = weighted(g->tensor(name));
  EXPECT_LT(ew, en);
  for (const auto& t : rw.tensors) {
    if (t.name == name) {
      EXPECT_NEAR(t.rmse, ew, 1e-6 * ew);  // the table reports the weighted error
    }
  }
  (void)rn;
}

TEST_F(QuantizeModel, ErrorsAndCancelLeaveNoFile) {
  QuantizeOptions o;
  o.target = "q4_0";
  o.progress = false;
  auto p = plan_quantization(*in_, o);
  ASSERT_TRUE(p.ok());
  // A directory that does not exist.
  auto r = quantize_model(*in_, *p, o, (dir_ / "missing" / "out.gguf").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("missing/out.gguf"), std::string::npos) << r.error().message();
  // Cancelled (as by Ctrl-C): "interrupted", and neither OUT nor its temporary file remains.
  std::atomic<bool> cancel{true};
  o.cancel = &cancel;
  r = quantize_model(*in_, *p, o, (dir_ / "out.gguf").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("interrupted"), std::string::npos) << r.error().message();
  EXPECT_TRUE(dir_entries().empty());
}

}  // namespace
}  // namespace pocketlm
