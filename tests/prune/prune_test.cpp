// Structured pruning (src/prune) on stories260K (F32) and tiny transplants: each pruned file loads and computes
// exactly what the unpruned model computes with the removed parts masked to zero (a dropped block's attn_output
// and ffn_down zeroed, a dropped head's attn_output columns, a dropped FFN channel's ffn_down column): the
// narrowed matrix products sum the same non-zero terms, so the logits agree to rounding. Then the repair's
// least squares, the head counts GQA allows, and the errors (nothing written).
#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <cmath>
#include <deque>
#include <filesystem>
#include <functional>
#include <random>
#include <set>

#include "bench/transplant.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "prune/prune_model.h"
#include "prune/refit.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

fs::path temp(const std::string& name) {
  return fs::temp_directory_path() / ("plm_prune_" + std::to_string(::getpid()) + "_" + name + ".gguf");
}

std::unique_ptr<Model> load(const fs::path& p) {
  ModelLoadOptions lo;
  lo.decode_layout = false;
  auto m = Model::load(p.string(), lo);
  EXPECT_TRUE(m.ok()) << m.error().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

std::vector<int32_t> ids(size_t n, size_t salt = 0) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(3 + (i * 53 + salt * 17) % 500);
  return v;
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& toks) {
  auto s = Session::create(m, {.n_ctx = 128, .kv_type = KvType::F32, .n_threads = 2, .kv_block = 8});
  EXPECT_TRUE(s.ok());
  auto l = (*s)->eval(toks, true);
  EXPECT_TRUE(l.ok()) << l.error().message();
  return {l->begin(), l->end()};
}

PruneStats stats_of(const Model& m, bool gram = false) {
  const std::vector<std::vector<int32_t>> seqs = {ids(64, 1), ids(64, 2), ids(48, 3)};
  PruneStatsOptions so;
  so.gram = gram;
  so.n_threads = 2;
  auto st = collect_prune_stats(m, seqs, so);
  EXPECT_TRUE(st.ok()) << st.error().message();
  return std::move(st).value();
}

// A copy of `src` with the named F32 matrices' columns (elements of each GGUF row) zeroed where `zero` says.
fs::path masked(const Model& src, const std::string& name,
                const std::function<bool(const std::string& tensor, int64_t col)>& zero) {
  GgufWriter w;
  for (const auto& [k, v] : src.gguf().metadata()) w.set(k, v);
  std::deque<std::vector<float>> data;
  for (const GgufTensor& t : src.gguf().tensors()) {
    std::vector<float>& d = data.emplace_back(tensor_to_f32(t));
    for (int64_t r = 0; r < t.n_rows(); ++r)
      for (int64_t c = 0; c < t.ne[0]; ++c)
        if (zero(t.name, c)) d[static_cast<size_t>(r * t.ne[0] + c)] = 0.0f;
    EXPECT_TRUE(w.add_tensor(t.name, GgmlType::F32, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                             {reinterpret_cast<const uint8_t*>(d.data()), d.size() * sizeof(float)})
                    .ok());
  }
  const fs::path out = temp(name);
  EXPECT_TRUE(w.write(out.string()).ok());
  return out;
}

// The reference of a plan: dropped blocks' attn_output and ffn_down all zero, dropped heads' attn_output
// columns and dropped channels' ffn_down columns zero.
fs::path mask_of(const Model& m, const PrunePlan& p, const std::string& name) {
  const int64_t hd = m.config().head_dim;
  return masked(m, name, [&](const std::string& t, int64_t col) {
    for (int64_t l = 0; l < p.n_layer; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      const bool dropped = std::find(p.dropped_layers.begin(), p.dropped_layers.end(), l) != p.dropped_layers.end();
      if (t == b + "attn_output.weight") {
        if (dropped) return true;
        const auto& kh = p.kept_heads[static_cast<size_t>(l)];
        return std::find(kh.begin(), kh.end(), col / hd) == kh.end();
      }
      if (t == b + "ffn_down.weight") {
        if (dropped) return true;
        const auto& kc = p.kept_channels[static_cast<size_t>(l)];
        return !std::binary_search(kc.begin(), kc.end(), col);
      }
    }
    return false;
  });
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

// Prunes `src` with `o`, checks the narrowed file against the masked reference, returns the plan.
PrunePlan prune_and_compare(const Model& src, const PruneOptions& o, const std::string& name, double tol = 2e-4) {
  const PruneStats st = stats_of(src);
  auto plan = plan_pruning(src, &st, o);
  EXPECT_TRUE(plan.ok()) << plan.error().message();
  if (!plan.ok()) return {};
  const fs::path out = temp(name);
  auto r = write_pruned_model(src, *plan, &st, o, out.string());
  EXPECT_TRUE(r.ok()) << r.error().message();
  auto pruned = load(out);
  const fs::path ref_path = mask_of(src, *plan, name + "_mask");
  auto ref = load(ref_path);
  fs::remove(out);
  fs::remove(ref_path);
  if (!pruned || !ref) return *plan;
  EXPECT_EQ(pruned->config().n_layer, static_cast<int64_t>(plan->kept_layers.size()));
  EXPECT_EQ(pruned->config().n_head, plan->out_n_head);
  EXPECT_EQ(pruned->config().n_head_kv, plan->out_n_head_kv);
  EXPECT_EQ(pruned->config().n_ff, plan->out_n_ff);
  const std::vector<int32_t> toks = ids(40, 9);
  const std::vector<float> a = logits(*pruned, toks), b = logits(*ref, toks), full = logits(src, toks);
  EXPECT_LT(max_abs_diff(a, b), tol) << name;
  EXPECT_GT(max_abs_diff(a, full), 1e-3) << name << ": pruning changed nothing";  // the check has teeth
  return *plan;
}

PruneOptions quiet() {
  PruneOptions o;
  o.progress = false;
  return o;
}

TEST(Prune, LayerHeadsAndFfnTogetherEqualTheMaskedModel) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.keep_layers = 4;   // one of 5 blocks, by angular distance
  o.heads_keep = 0.5;  // 1 of 2 query heads in each of the 4 KV groups
  o.ffn_keep = 0.5;    // 86 of 172 channels
  const PrunePlan p = prune_and_compare(*src, o, "all");
  EXPECT_EQ(p.dropped_layers.size(), 1u);
  EXPECT_EQ(p.out_n_head, 4);
  EXPECT_EQ(p.out_n_head_kv, 4);
  EXPECT_EQ(p.out_n_ff, 86);
  EXPECT_LT(p.out_bytes, p.bytes);
}

TEST(Prune, WholeKvGroupsGoWithTheirQueryHeads) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.heads_keep = 0.75;  // 6 of 8: three whole KV groups of 2 (1.5 heads per group is no count)
  const PrunePlan p = prune_and_compare(*src, o, "kv");
  EXPECT_EQ(p.out_n_head, 6);
  EXPECT_EQ(p.out_n_head_kv, 3);
  for (int64_t l : p.kept_layers)
    for (size_t i = 0; i < p.kept_heads[static_cast<size_t>(l)].size(); ++i)  // q head i uses kv head i / 2
      EXPECT_EQ(p.kept_heads[static_cast<size_t>(l)][i] / 2, p.kept_kv_heads[static_cast<size_t>(l)][i / 2]);
}

TEST(Prune, ExplicitLayersNeedNoCalibrationAndRenumber) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.drop_layers = {1, 3};
  EXPECT_FALSE(prune_needs_calibration(o));
  auto plan = plan_pruning(*src, nullptr, o);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->kept_layers, (std::vector<int64_t>{0, 2, 4}));
  std::set<std::string> names;
  for (const auto& t : plan->tensors) names.insert(t.out_name);
  EXPECT_TRUE(names.count("blk.2.ffn_down.weight"));
  EXPECT_FALSE(names.count("blk.3.ffn_down.weight"));
  prune_and_compare(*src, o, "explicit");
}

TEST(Prune, BlockInfluencePicksTheLowestBlocks) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  const PruneStats st = stats_of(*src);
  PruneOptions o = quiet();
  o.keep_layers = 3;
  o.score = LayerScore::Bi;
  auto p = plan_pruning(*src, &st, o);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->dropped_layers.size(), 2u);
  for (int64_t d : p->dropped_layers)
    for (int64_t k : p->kept_layers)
      EXPECT_LE(st.layers[static_cast<size_t>(d)].bi, st.layers[static_cast<size_t>(k)].bi);
  // Angular distance between boundaries grows with the span it covers, on average.
  EXPECT_GT(st.angular_distance(0, 5), st.angular_distance(0, 1));
}

// Mean KL(full || pruned) of the next-token distributions over a prompt like the calibration's.
double kl_to_full(const Model& full, const Model& pruned) {
  const std::vector<int32_t> toks = ids(64, 1);
  const std::vector<float> a = logits(full, toks), b = logits(pruned, toks);
  const size_t V = static_cast<size_t>(full.config().n_vocab);
  double sum = 0;
  for (size_t t = 0; t < toks.size(); ++t) {
    const float* x = &a[t * V];
    const float* y = &b[t * V];
    double mx = -1e30, my = -1e30, zx = 0, zy = 0;
    for (size_t i = 0; i < V; ++i) mx = std::max(mx, double(x[i])), my = std::max(my, double(y[i]));
    for (size_t i = 0; i < V; ++i) zx += std::exp(x[i] - mx), zy += std::exp(y[i] - my);
    for (size_t i = 0; i < V; ++i) {
      const double lp = x[i] - mx - std::log(zx), lq = y[i] - my - std::log(zy);
      sum += std::exp(lp) * (lp - lq);
    }
  }
  return sum / static_cast<double>(toks.size());
}

// KL to the full model of `src` pruned by `o` with the statistics `st`.
double pruned_kl(const Model& src, const PruneStats& st, const PruneOptions& o, const std::string& name) {
  auto p = plan_pruning(src, &st, o);
  EXPECT_TRUE(p.ok()) << p.error().message();
  if (!p.ok()) return 1e9;
  const fs::path out = temp(name);
  EXPECT_TRUE(write_pruned_model(src, *p, &st, o, out.string()).ok());
  auto m = load(out);
  fs::remove(out);
  return m ? kl_to_full(src, *m) : 1e9;
}

TEST(Prune, RepairLowersTheErrorAgainstTheFullModel) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  const PruneStats st = stats_of(*src, /*gram=*/true);
  PruneOptions o = quiet();
  o.ffn_keep = 0.5;
  o.heads_keep = 0.5;
  const double plain = pruned_kl(*src, st, o, "plain");
  o.repair = true;
  const double repaired = pruned_kl(*src, st, o, "repaired");
  EXPECT_LT(repaired, plain) << "KL without repair " << plain << ", with " << repaired;
}

TEST(Prune, RepairFoldsADroppedBlockIntoTheOneBefore) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.drop_layers = {2, 3};
  auto first = plan_pruning(*src, nullptr, o);
  ASSERT_TRUE(first.ok());
  first->repair = true;
  const auto runs = absorb_runs(*src, *first);
  ASSERT_EQ(runs, (std::vector<std::pair<int64_t, int64_t>>{{2, 4}}));
  const std::vector<std::vector<int32_t>> seqs = {ids(64, 1), ids(64, 2), ids(48, 3)};
  auto st = collect_prune_stats(*src, seqs, {.gram = true, .absorb = runs, .n_threads = 2});
  ASSERT_TRUE(st.ok()) << st.error().message();
  const double plain = pruned_kl(*src, *st, o, "drop_plain");
  o.repair = true;
  const double repaired = pruned_kl(*src, *st, o, "drop_repaired");
  EXPECT_LT(repaired, plain) << "KL without repair " << plain << ", with " << repaired;
  // Without the cross moments the repair is refused, naming the setting.
  const PruneStats no_cross = stats_of(*src, /*gram=*/true);
  auto p = plan_pruning(*src, &no_cross, o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().setting(), "repair");
}

TEST(PruneRefit, KeepingEveryColumnGivesTheWeightsBack) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int64_t rows = 5, n = 12, T = 200;
  std::vector<float> w(static_cast<size_t>(rows * n)), x(static_cast<size_t>(T * n)),
      gram(static_cast<size_t>(n * n), 0.0f);
  for (float& v : w) v = nd(rng);
  for (float& v : x) v = nd(rng);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        gram[static_cast<size_t>(i * n + j)] += x[static_cast<size_t>(t * n + i)] * x[static_cast<size_t>(t * n + j)];
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  auto r = refit_columns(w, rows, n, gram, all, 1e-9);
  ASSERT_TRUE(r.ok());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR((*r)[i], w[i], 1e-4);
  // Half the columns, where the dropped ones correlate with kept ones: the refit output error is below plain
  // truncation's.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 1; i < n; i += 2)
      x[static_cast<size_t>(t * n + i)] = 0.8f * x[static_cast<size_t>(t * n + i - 1)] + 0.2f * nd(rng);
  std::fill(gram.begin(), gram.end(), 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        gram[static_cast<size_t>(i * n + j)] += x[static_cast<size_t>(t * n + i)] * x[static_cast<size_t>(t * n + j)];
  std::vector<int64_t> even;
  for (int64_t i = 0; i < n; i += 2) even.push_back(i);
  auto h = refit_columns(w, rows, n, gram, even, 1e-9);
  ASSERT_TRUE(h.ok());
  double err_refit = 0, err_cut = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r0 = 0; r0 < rows; ++r0) {
      double full = 0, fit = 0, cut = 0;
      for (int64_t j = 0; j < n; ++j) full += w[static_cast<size_t>(r0 * n + j)] * x[static_cast<size_t>(t * n + j)];
      for (size_t k = 0; k < even.size(); ++k) {
        fit += (*h)[static_cast<size_t>(r0) * even.size() + k] * x[static_cast<size_t>(t * n + even[k])];
        cut += w[static_cast<size_t>(r0 * n + even[k])] * x[static_cast<size_t>(t * n + even[k])];
      }
      err_refit += (full - fit) * (full - fit);
      err_cut += (full - cut) * (full - cut);
    }
  EXPECT_LT(err_refit, 0.25 * err_cut);
}

// Errors come before any work and no file appears.
void expect_refused(const Model& m, const PruneOptions& o, const std::string& words, const std::string& setting) {
  auto st = check_prunable(m, o);
  ASSERT_FALSE(st.ok()) << words;
  EXPECT_NE(st.error().message().find(words), std::string::npos) << st.error().message();
  EXPECT_EQ(st.error().setting(), setting);
  auto p = plan_pruning(m, nullptr, o);
  EXPECT_FALSE(p.ok());
}

TEST(PruneErrors, DroppingEveryLayer) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.drop_layers = {0, 1, 2, 3, 4};
  expect_refused(*src, o, "dropping all 5 layers leaves no model", "drop_layers");
  o.drop_layers = {7};
  expect_refused(*src, o, "layer 7 does not exist", "drop_layers");
  o.drop_layers = {1, 1};
  expect_refused(*src, o, "listed twice", "drop_layers");
}

TEST(PruneErrors, AHeadFractionThatBreaksGqaGrouping) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.heads_keep = 0.375;  // 3 of 8 heads: neither the same count per KV group of 2 nor whole groups
  expect_refused(*src, o, "which GQA grouping does not allow (4 KV heads of 2 query heads each", "heads_keep");
  auto st = check_prunable(*src, o);
  EXPECT_NE(st.error().message().find("fractions that fit: 0.25, 0.5, 0.75, 1"), std::string::npos)
      << st.error().message();
}

TEST(PruneErrors, ArchitecturesLlamaCppCannotLoadPruned) {
  const fs::path qwen2 = temp("qwen2"), smollm3 = temp("smollm3");
  ASSERT_TRUE(
      write_transplanted_model({.target = "qwen2", .from = test::stories_path().string()}, qwen2.string()).ok());
  ASSERT_TRUE(
      write_transplanted_model({.target = "smollm3", .from = test::stories_path().string()}, smollm3.string()).ok());
  auto q = load(qwen2), s = load(smollm3);
  fs::remove(qwen2);
  fs::remove(smollm3);
  ASSERT_TRUE(q && s);
  PruneOptions o = quiet();
  o.heads_keep = 0.5;
  expect_refused(*q, o, "llama.cpp sizes the Q projection as n_embd", "heads_keep");
  o = quiet();
  o.drop_layers = {2};
  expect_refused(*s, o, "smollm3 skips RoPE on every 4th layer", "drop_layers");
  // What those archs can take still works: qwen2's FFN, smollm3's heads.
  o = quiet();
  o.ffn_keep = 0.5;
  prune_and_compare(*q, o, "qwen2_ffn");
  o = quiet();
  o.heads_keep = 0.5;
  prune_and_compare(*s, o, "smollm3_heads");
}

TEST(PruneErrors, ACancelledWriteLeavesNoFile) {
  auto src = load(test::stories_path());
  ASSERT_TRUE(src);
  PruneOptions o = quiet();
  o.drop_layers = {2};
  std::atomic<bool> cancel{true};
  o.cancel = &cancel;
  auto p = plan_pruning(*src, nullptr, o);
  ASSERT_TRUE(p.ok());
  const fs::path out = temp("cancel");
  auto r = write_pruned_model(*src, *p, nullptr, o, out.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("interrupted"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));
  // The repair without its statistics is refused before writing.
  o = quiet();
  o.ffn_keep = 0.5;
  o.repair = true;
  const PruneStats st = stats_of(*src, /*gram=*/false);
  auto q = plan_pruning(*src, &st, o);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().setting(), "repair");
}

}  // namespace
}  // namespace pocketlm
