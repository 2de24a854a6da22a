// Quantization recipes: per-tensor plans of llama.cpp's named mixes. The facts checked here are what
// llama.cpp writes for these shapes (Llama-3.2-1B and SmolLM2-135M Q4_K_M files as published); the peer
// test in tests/bench/recipe_peer_test.cpp compares whole plans with `llama-quantize --dry-run`.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "bench/synthetic_model.h"
#include "quant/recipe.h"

namespace pocketlm {
namespace {

std::map<std::string, TensorPlan> plan_of(const std::string& shape, const std::string& recipe, int64_t n_vocab) {
  auto s = find_synth_shape(shape);
  EXPECT_TRUE(s.ok());
  auto r = find_recipe(recipe);
  EXPECT_TRUE(r.ok());
  RecipeModelInfo m{"llama", s->n_layer, s->n_head, s->n_head_kv, 0, false};
  auto tensors = synth_tensor_list(*s, n_vocab);
  auto plan = plan_recipe(*r, m, tensors);
  EXPECT_TRUE(plan.ok());
  std::map<std::string, TensorPlan> out;
  for (auto& p : *plan) out.emplace(p.name, p);
  return out;
}

std::string blk(int i, const char* t) { return "blk." + std::to_string(i) + "." + t + ".weight"; }

TEST(Recipe, FindIsCaseInsensitiveAndListsKnownNames) {
  EXPECT_EQ(find_recipe("q4_k_m")->name, "Q4_K_M");
  EXPECT_EQ(find_recipe("Q8_0")->ftype, 7u);
  auto bad = find_recipe("Q4_K_X");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("Q4_K_M"), std::string::npos);
}

TEST(Recipe, MoreBitsLayersOf16And30) {
  std::set<int> got16, got30;
  for (int i = 0; i < 16; ++i)
    if (recipe_more_bits_layer(i, 16)) got16.insert(i);
  for (int i = 0; i < 30; ++i)
    if (recipe_more_bits_layer(i, 30)) got30.insert(i);
  EXPECT_EQ(got16, (std::set<int>{0, 1, 4, 7, 10, 13, 14, 15}));
  EXPECT_EQ(got30, (std::set<int>{0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29}));
}

TEST(Recipe, Llama1bQ4KM) {
  auto p = plan_of("llama-1b", "Q4_K_M", 128256);
  EXPECT_EQ(p.at("token_embd.weight").type, GgmlType::Q6_K);  // tied: the head's type
  EXPECT_FALSE(p.count("output.weight"));
  EXPECT_EQ(p.at("output_norm.weight").type, GgmlType::F32);
  const std::set<int> more = {0, 1, 4, 7, 10, 13, 14, 15};
  for (int i = 0; i < 16; ++i) {
    const GgmlType bumped = more.count(i) ? GgmlType::Q6_K : GgmlType::Q4_K;
    EXPECT_EQ(p.at(blk(i, "attn_v")).type, bumped) << i;
    EXPECT_EQ(p.at(blk(i, "ffn_down")).type, bumped) << i;
    for (const char* t : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"}) {
      EXPECT_EQ(p.at(blk(i, t)).type, GgmlType::Q4_K) << blk(i, t);
      EXPECT_FALSE(p.at(blk(i, t)).fallback());
    }
    EXPECT_EQ(p.at(blk(i, "attn_norm")).type, GgmlType::F32);
  }
}

TEST(Recipe, Llama7bUntiedHeadAndOtherMixes) {
  auto q4 = plan_of("llama-7b", "Q4_0", 32000);
  EXPECT_EQ(q4.at("token_embd.weight").type, GgmlType::Q4_0);  // untied: the embedding is not the head
  EXPECT_EQ(q4.at("output.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(q4.at(blk(0, "ffn_down")).type, GgmlType::Q4_0);
  auto q8 = plan_of("llama-7b", "Q8_0", 32000);
  EXPECT_EQ(q8.at("output.weight").type, GgmlType::Q8_0);
  auto f16 = plan_of("llama-7b", "F16", 32000);
  EXPECT_EQ(f16.at("output.weight").type, GgmlType::F16);
  EXPECT_EQ(f16.at(blk(3, "ffn_norm")).type, GgmlType::F32);
  auto q2 = plan_of("llama-7b", "Q2_K", 32000);  // n_head_kv == n_head: gqa 1
  EXPECT_EQ(q2.at(blk(5, "attn_v")).type, GgmlType::Q3_K);
  EXPECT_EQ(q2.at(blk(5, "ffn_down")).type, GgmlType::Q3_K);
  EXPECT_EQ(q2.at(blk(5, "attn_output")).type, GgmlType::Q3_K);
  EXPECT_EQ(q2.at(blk(5, "attn_q")).type, GgmlType::Q2_K);
  auto q2g = plan_of("llama-1b", "Q2_K", 32000);  // gqa 4: attn_v q4_K
  EXPECT_EQ(q2g.at(blk(5, "attn_v")).type, GgmlType::Q4_K);
  auto q3m = plan_of("llama-7b", "Q3_K_M", 32000);
  EXPECT_EQ(q3m.at(blk(0, "attn_v")).type, GgmlType::Q5_K);
  EXPECT_EQ(q3m.at(blk(1, "attn_v")).type, GgmlType::Q5_K);
  EXPECT_EQ(q3m.at(blk(2, "attn_v")).type, GgmlType::Q4_K);
  EXPECT_EQ(q3m.at(blk(1, "ffn_down")).type, GgmlType::Q5_K);  // 32/16 = 2 first layers
  EXPECT_EQ(q3m.at(blk(2, "ffn_down")).type, GgmlType::Q4_K);
  EXPECT_EQ(q3m.at(blk(2, "attn_output")).type, GgmlType::Q4_K);
  auto q4s = plan_of("llama-7b", "Q4_K_S", 32000);
  EXPECT_EQ(q4s.at(blk(3, "attn_v")).type, GgmlType::Q5_K);
  EXPECT_EQ(q4s.at(blk(4, "attn_v")).type, GgmlType::Q4_K);
  EXPECT_EQ(q4s.at(blk(3, "ffn_down")).type, GgmlType::Q5_K);  // 32/8 = 4
  EXPECT_EQ(q4s.at(blk(4, "ffn_down")).type, GgmlType::Q4_K);
}

TEST(Recipe, SmolLM2FallsBackToLegacyTypesWithReasons) {
  auto p = plan_of("smollm2-135m", "Q4_K_M", 49152);
  const TensorPlan& emb = p.at("token_embd.weight");
  EXPECT_EQ(emb.type, GgmlType::Q8_0);
  ASSERT_TRUE(emb.fallback());
  EXPECT_EQ(*emb.wanted, GgmlType::Q6_K);
  EXPECT_NE(emb.reason.find("576"), std::string::npos) << emb.reason;
  const std::set<int> more = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29};
  for (int i = 0; i < 30; ++i) {
    const TensorPlan& v = p.at(blk(i, "attn_v"));
    EXPECT_EQ(v.type, more.count(i) ? GgmlType::Q8_0 : GgmlType::Q5_0) << i;
    EXPECT_TRUE(v.fallback());
    EXPECT_EQ(*v.wanted, more.count(i) ? GgmlType::Q6_K : GgmlType::Q4_K);
    // ffn_down rows are 1536 wide (6 blocks of 256): no fallback.
    EXPECT_EQ(p.at(blk(i, "ffn_down")).type, more.count(i) ? GgmlType::Q6_K : GgmlType::Q4_K) << i;
    EXPECT_FALSE(p.at(blk(i, "ffn_down")).fallback());
    EXPECT_EQ(p.at(blk(i, "ffn_up")).type, GgmlType::Q5_0);
    EXPECT_NE(p.at(blk(i, "ffn_up")).reason.find("q4_K's block"), std::string::npos);
  }
  auto q5 = plan_of("smollm2-135m", "Q5_K_S", 49152);
  EXPECT_EQ(q5.at(blk(0, "attn_q")).type, GgmlType::Q5_1);
  auto q3 = plan_of("smollm2-135m", "Q3_K_S", 49152);
  EXPECT_EQ(q3.at(blk(0, "attn_q")).type, GgmlType::Q4_0);
}

TEST(Recipe, LayersAreCountedInLlamaCppsOrderNotTheFiles) {
  // Files often list blk.0, blk.1, blk.10, ...; the plan must not depend on that.
  auto s = find_synth_shape("llama-1b");
  RecipeModelInfo m{"llama", s->n_layer, s->n_head, s->n_head_kv, 0, false};
  auto tensors = synth_tensor_list(*s, 32000);
  auto by_layer = plan_recipe(*find_recipe("Q4_K_M"), m, tensors);
  std::sort(tensors.begin(), tensors.end(),
            [](const RecipeTensor& a, const RecipeTensor& b) { return a.name < b.name; });
  ASSERT_EQ(tensors[18].name.substr(0, 7), "blk.10.");  // lexicographic indeed: blk.0, blk.1, blk.10
  auto by_name = plan_recipe(*find_recipe("Q4_K_M"), m, tensors);
  ASSERT_TRUE(by_layer.ok() && by_name.ok());
  std::map<std::string, GgmlType> want;
  for (const auto& p : *by_layer) want[p.name] = p.type;
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ((*by_name)[i].name, tensors[i].name);  // the plan keeps the given order
    EXPECT_EQ((*by_name)[i].type, want.at(tensors[i].name)) << tensors[i].name;
  }
  EXPECT_EQ(want.at(blk(10, "attn_v")), GgmlType::Q6_K);
  EXPECT_EQ(want.at(blk(2, "attn_v")), GgmlType::Q4_K);
}

TEST(Recipe, RowsNotAMultipleOf32BecomeF16) {
  auto r = find_recipe("Q4_0");
  RecipeModelInfo m{"llama", 1, 1, 1, 0, false};
  std::vector<RecipeTensor> t = {{"blk.0.ffn_up.weight", {100, 64}, GgmlType::F32},
                                 {"blk.0.attn_norm.weight", {100}, GgmlType::F32}};
  auto plan = plan_recipe(*r, m, t);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)[0].type, GgmlType::F16);
  EXPECT_NE((*plan)[0].reason.find("nor of 32"), std::string::npos) << (*plan)[0].reason;
  EXPECT_EQ((*plan)[1].type, GgmlType::F32);
  EXPECT_FALSE(plan_recipe(*r, RecipeModelInfo{"llama", 0, 1, 1, 0, false}, t).ok());
}

}  // namespace
}  // namespace pocketlm
