// The architectures beyond llama/gemma3 (issue 21) on tiny models transplanted from stories260K
// (bench/transplant.h): the configuration each reads, the tensors each binds, clear errors for bad metadata and
// tensors, neutral transplants computing what the source computes (layouts and RoPE orders are right), and
// batched = incremental logits for every architecture (KV, windows and RoPE positions agree).
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <functional>

#include "bench/transplant.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "model/ops.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

fs::path temp(const std::string& name) {
  return fs::temp_directory_path() / ("plm_arch_" + std::to_string(::getpid()) + "_" + name + ".gguf");
}

// stories260K transplanted to `target` (a temporary file, removed by the caller).
fs::path tiny(const std::string& target, bool neutral = false) {
  const fs::path p = temp(target + (neutral ? "_neutral" : ""));
  auto r = write_transplanted_model(
      {.target = target, .from = test::stories_path().string(), .seed = 7, .neutral = neutral}, p.string());
  EXPECT_TRUE(r.ok()) << r.error().message();
  return p;
}

// A copy of `src` with metadata edited and tensors replaced or dropped by `edit_tensor` (return false to drop;
// it may change the type, shape or bytes).
struct TensorEdit {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> bytes;
};
fs::path rewrite(const fs::path& src_path, const std::string& name, const std::function<void(GgufWriter&)>& edit_meta,
                 const std::function<bool(TensorEdit&)>& edit_tensor = {}) {
  auto src = GgufFile::open(src_path.string());
  EXPECT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& [k, v] : src->metadata()) w.set(k, v);
  if (edit_meta) edit_meta(w);
  std::deque<TensorEdit> kept;  // the writer reads the bytes when it writes
  for (const auto& t : src->tensors()) {
    TensorEdit& e = kept.emplace_back(TensorEdit{t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                                                 std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    if (edit_tensor && !edit_tensor(e)) continue;
    EXPECT_TRUE(w.add_tensor(e.name, e.type, e.ne, e.bytes).ok());
  }
  const fs::path out = temp(name);
  EXPECT_TRUE(w.write(out.string()).ok());
  return out;
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::string error;
};
Loaded load_and_remove(const fs::path& path) {
  auto m = Model::load(path.string());
  fs::remove(path);
  if (!m.ok()) return {nullptr, m.error().message()};
  return {std::move(m).value(), ""};
}

std::vector<int32_t> prompt_ids(size_t n) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(3 + (i * 53) % 500);
  return ids;
}

std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids, KvType kv = KvType::F32) {
  auto s = Session::create(m, {.n_ctx = 128, .kv_type = kv, .n_threads = 2, .kv_block = 8});
  EXPECT_TRUE(s.ok());
  auto l = (*s)->eval(ids, true);
  EXPECT_TRUE(l.ok()) << l.error().message();
  return {l->begin(), l->end()};
}

TEST(ArchConfig, UnsupportedArchitectureListsTheSupportedOnes) {
  auto r = load_and_remove(rewrite(test::stories_path(), "mamba", [](GgufWriter& w) {
    w.set("general.architecture", GgufValue::of_string("mamba"));
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(
      r.error.find("unsupported architecture 'mamba' (supported: llama, qwen2, qwen3, phi3, smollm3, gemma2, gemma3)"),
      std::string::npos)
      << r.error;
}

TEST(ArchConfig, EachTransplantReadsItsLayout) {
  {
    auto r = load_and_remove(tiny("llama3"));
    ASSERT_TRUE(r.model) << r.error;
    const ModelWeights& w = r.model->weights();
    ASSERT_NE(w.rope_freqs, nullptr);
    EXPECT_EQ(w.rope_freqs->ne[0], r.model->config().rope_dim / 2);
    EXPECT_EQ(w.rope_factors(r.model->config(), 64), reinterpret_cast<const float*>(w.rope_freqs->data));
  }
  {
    auto r = load_and_remove(tiny("mistral"));
    ASSERT_TRUE(r.model) << r.error;
    EXPECT_EQ(r.model->config().window(0), 4096);
    EXPECT_EQ(r.model->config().window(4), 4096);
  }
  {
    auto r = load_and_remove(tiny("qwen2"));
    ASSERT_TRUE(r.model) << r.error;
    EXPECT_EQ(r.model->config().rope_type, RopeType::NeoX);
    const LayerWeights& L = r.model->weights().layers[0];
    EXPECT_TRUE(L.bq && L.bk && L.bv);
    EXPECT_EQ(L.attn_q_norm, nullptr);
  }
  {
    auto r = load_and_remove(tiny("qwen3"));
    ASSERT_TRUE(r.model) << r.error;
    EXPECT_TRUE(r.model->config().qk_norm);
    EXPECT_NE(r.model->weights().layers[4].attn_k_norm, nullptr);
    EXPECT_EQ(r.model->weights().layers[0].bq, nullptr);
  }
  {
    auto r = load_and_remove(tiny("phi3"));
    ASSERT_TRUE(r.model) << r.error;
    const ModelConfig& c = r.model->config();
    EXPECT_EQ(c.rope_dim, 8);
    EXPECT_EQ(c.n_ctx_train, 131072);
    EXPECT_EQ(c.n_ctx_orig, 128);  // the source's context
    EXPECT_NEAR(c.rope_attn_factor, std::sqrt(1 + std::log(1024.0) / std::log(128.0)), 1e-6);
    EXPECT_FLOAT_EQ(c.query_scale, 1.0f / std::sqrt(8.0f));
    EXPECT_EQ(c.window(0), 0);  // Phi-3's window is not applied (as llama.cpp)
    const ModelWeights& w = r.model->weights();
    EXPECT_NE(w.layers[0].wqkv, nullptr);
    EXPECT_EQ(w.layers[0].wq, nullptr);
    EXPECT_EQ(w.layers[0].ffn_gate, nullptr);
    EXPECT_EQ(w.layers[0].ffn_up->ne[1], 2 * c.n_ff);
    // Short factors up to the original context, long ones beyond.
    EXPECT_EQ(w.rope_factors(c, 128), reinterpret_cast<const float*>(w.rope_short->data));
    EXPECT_EQ(w.rope_factors(c, 129), reinterpret_cast<const float*>(w.rope_long->data));
  }
  {
    auto r = load_and_remove(tiny("smollm3"));
    ASSERT_TRUE(r.model) << r.error;
    const ModelConfig& c = r.model->config();
    EXPECT_EQ(c.rope_type, RopeType::Normal);
    EXPECT_TRUE(c.rope_on(0) && c.rope_on(1) && c.rope_on(2) && c.rope_on(4));
    EXPECT_FALSE(c.rope_on(3));
  }
}

// A tiny gemma2 from stories260K: its llama.* keys as gemma2.*, then `edit` (post-norms: with_post_norms).
fs::path tiny_gemma2(const std::string& name, const std::function<void(GgufWriter&)>& edit = {}) {
  auto src = GgufFile::open(test::stories_path().string());
  EXPECT_TRUE(src.ok());
  return rewrite(test::stories_path(), name, [&](GgufWriter& w) {
    w.set("general.architecture", GgufValue::of_string("gemma2"));
    for (const auto& [k, v] : src->metadata())
      if (k.rfind("llama.", 0) == 0) w.set("gemma2." + k.substr(6), v);
    if (edit) edit(w);
  });
}

fs::path with_post_norms(const fs::path& in, const std::string& name) {
  auto src = GgufFile::open(in.string());
  EXPECT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& [k, v] : src->metadata()) w.set(k, v);
  for (const auto& t : src->tensors())
    EXPECT_TRUE(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), {t.data, t.nbytes}).ok());
  static const std::vector<float> ones(64, 1.0f);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(ones.data()), 256);
  for (int il = 0; il < 5; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    EXPECT_TRUE(w.add_tensor(p + "post_attention_norm.weight", GgmlType::F32, {64}, bytes).ok());
    EXPECT_TRUE(w.add_tensor(p + "post_ffw_norm.weight", GgmlType::F32, {64}, bytes).ok());
  }
  const fs::path out = temp(name);
  EXPECT_TRUE(w.write(out.string()).ok());
  fs::remove(in);
  return out;
}

TEST(ArchConfig, Gemma2DefaultsAreThePublishedOnes) {
  // Only the keys Gemma2Model always writes: window 4096 on every other layer (even layers local), soft-caps
  // 50 and 30, one RoPE base for all layers, queries scaled by head_dim^-1/2.
  auto r = load_and_remove(with_post_norms(tiny_gemma2("g2_plain"), "g2_defaults"));
  ASSERT_TRUE(r.model) << r.error;
  const ModelConfig& c = r.model->config();
  EXPECT_EQ(c.block, ArchBlock::Gemma);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.layer_is_local, (std::vector<uint8_t>{1, 0, 1, 0, 1}));
  EXPECT_FLOAT_EQ(c.attn_softcap, 50.0f);
  EXPECT_FLOAT_EQ(c.final_logit_softcap, 30.0f);
  EXPECT_FLOAT_EQ(c.rope_base(0), c.rope_base(1));
  EXPECT_FLOAT_EQ(c.query_scale, 1.0f / std::sqrt(8.0f));
  EXPECT_FALSE(c.qk_norm);
  // Without the post-norms the error names the first one missing.
  auto bad = load_and_remove(tiny_gemma2("g2_no_post"));
  ASSERT_FALSE(bad.model);
  EXPECT_NE(bad.error.find("tensor 'blk.0.post_attention_norm.weight': missing"), std::string::npos) << bad.error;
  // A negative soft-cap names its key.
  bad = load_and_remove(with_post_norms(
      tiny_gemma2("g2_cap", [](GgufWriter& w) { w.set("gemma2.attn_logit_softcapping", GgufValue::of_f32(-1.0f)); }),
      "g2_bad_cap"));
  ASSERT_FALSE(bad.model);
  EXPECT_NE(bad.error.find("'gemma2.attn_logit_softcapping': must be positive"), std::string::npos) << bad.error;
}

// Gemma 2 through a 6-token window with soft-capped attention: batched = incremental.
TEST(ArchForward, Gemma2BatchedEqualsIncrementalThroughTheWindow) {
  auto r = load_and_remove(
      with_post_norms(tiny_gemma2("g2_fwd",
                                  [](GgufWriter& w) {
                                    w.set("gemma2.attention.sliding_window", GgufValue::of_u32(6));
                                    w.set("gemma2.attn_logit_softcapping",
                                          GgufValue::of_f32(2.0f));  // small: the cap bites on these scores
                                  }),
                      "g2_fwd_norms"));
  ASSERT_TRUE(r.model) << r.error;
  const Model& m = *r.model;
  const auto ids = prompt_ids(40);
  const std::vector<float> batched = all_logits(m, ids);
  auto b = Session::create(m, {.n_ctx = 128, .kv_type = KvType::F32, .n_threads = 1, .kv_block = 8});
  ASSERT_TRUE(b.ok());
  const auto nv = static_cast<size_t>(m.config().n_vocab);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto one = (*b)->eval(std::span<const int32_t>(&ids[i], 1));
    ASSERT_TRUE(one.ok()) << one.error().message();
    for (size_t v = 0; v < nv; ++v) ASSERT_NEAR((*one)[v], batched[i * nv + v], 2e-4f) << "pos " << i << " token " << v;
  }
  for (float l : batched) ASSERT_LE(std::fabs(l), 30.0f);  // the final soft-cap bounds every logit
}

TEST(ArchConfig, BadTensorsAndKeysAreClearErrors) {
  const fs::path phi3 = tiny("phi3");
  // A fused QKV matrix one row short.
  auto r = load_and_remove(rewrite(phi3, "phi3_bad_qkv", {}, [](TensorEdit& e) {
    if (e.name == "blk.0.attn_qkv.weight") {
      e.ne[1] -= 1;
      e.bytes.resize(e.bytes.size() - static_cast<size_t>(e.ne[0]) * 4);
    }
    return true;
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("tensor 'blk.0.attn_qkv.weight': shape [64, 127], expected [64, 128]"), std::string::npos)
      << r.error;
  // A fused gate/up of n_ff rows (unfused width).
  r = load_and_remove(rewrite(phi3, "phi3_bad_up", {}, [](TensorEdit& e) {
    if (e.name == "blk.2.ffn_up.weight") {
      e.ne[1] /= 2;
      e.bytes.resize(e.bytes.size() / 2);
    }
    return true;
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("tensor 'blk.2.ffn_up.weight': shape [64, 172], expected [64, 344]"), std::string::npos)
      << r.error;
  // LongRoPE factors of the wrong length, and one set missing.
  r = load_and_remove(rewrite(phi3, "phi3_bad_factors", {}, [](TensorEdit& e) {
    if (e.name == "rope_factors_long.weight") {
      e.ne[0] = 3;
      e.bytes.resize(12);
    }
    return true;
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("tensor 'rope_factors_long.weight': shape [3], expected [4]"), std::string::npos) << r.error;
  r = load_and_remove(
      rewrite(phi3, "phi3_no_short", {}, [](TensorEdit& e) { return e.name != "rope_factors_short.weight"; }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("tensor 'rope_factors_short.weight': missing"), std::string::npos) << r.error;
  // A key the architecture needs.
  r = load_and_remove(rewrite(
      phi3, "phi3_no_heads", [](GgufWriter& w) { w.set("phi3.attention.head_count", GgufValue::of_string("eight")); }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("phi3.attention.head_count"), std::string::npos) << r.error;
  fs::remove(phi3);

  const fs::path llama3 = tiny("llama3");
  r = load_and_remove(rewrite(llama3, "llama3_bad_freqs", {}, [](TensorEdit& e) {
    if (e.name == "rope_freqs.weight") {
      e.ne[0] = 8;
      e.bytes.resize(32);
    }
    return true;
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("tensor 'rope_freqs.weight': shape [8], expected [4]"), std::string::npos) << r.error;
  r = load_and_remove(rewrite(llama3, "llama3_yarn", [](GgufWriter& w) {
    w.set("llama.rope.scaling.type", GgufValue::of_string("yarn"));
    w.set("llama.rope.scaling.factor", GgufValue::of_f32(4.0f));
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("'llama.rope.scaling.type': RoPE scaling 'yarn' is not supported"), std::string::npos)
      << r.error;
  fs::remove(llama3);

  const fs::path qwen3 = tiny("qwen3");
  r = load_and_remove(
      rewrite(qwen3, "qwen3_no_norm", {}, [](TensorEdit& e) { return e.name != "blk.1.attn_k_norm.weight"; }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(r.error.find("tensor 'blk.1.attn_k_norm.weight': missing"), std::string::npos) << r.error;
  fs::remove(qwen3);

  const fs::path qwen2 = tiny("qwen2");
  r = load_and_remove(rewrite(qwen2, "qwen2_bad_bias", {}, [](TensorEdit& e) {
    if (e.name == "blk.0.attn_k.bias") {
      e.type = GgmlType::F16;
      e.bytes.resize(e.bytes.size() / 2);
    }
    return true;
  }));
  ASSERT_FALSE(r.model);
  EXPECT_NE(
      r.error.find("tensor 'blk.0.attn_k.bias': type f16 is not supported for a bias or factor vector (needs f32)"),
      std::string::npos)
      << r.error;
  fs::remove(qwen2);
}

// A neutral qwen2 (Q/K rows in NeoX order, zero biases) and a neutral phi3 (fused QKV and gate/up, NeoX order,
// whole-head RoPE with unit factors, pre-scaled queries) compute what stories260K computes.
TEST(ArchForward, NeutralTransplantsComputeWhatTheSourceComputes) {
  auto src = Model::load(test::stories_path().string());
  ASSERT_TRUE(src.ok());
  const auto ids = prompt_ids(40);
  const std::vector<float> want = all_logits(**src, ids);
  for (const char* target : {"qwen2", "phi3", "llama3"}) {
    SCOPED_TRACE(target);
    auto r = load_and_remove(tiny(target, true));
    ASSERT_TRUE(r.model) << r.error;
    const std::vector<float> got = all_logits(*r.model, ids);
    ASSERT_EQ(got.size(), want.size());
    double max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i)
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(got[i] - want[i])));
    // llama3's factors leave the high frequencies alone and divide the low ones: at these positions the
    // model moves, but only a little; the two layout-only transplants agree to rounding.
    if (std::string(target) == "llama3") {
      EXPECT_GT(max_diff, 1e-4);
      EXPECT_LT(max_diff, 2.0);
    } else {
      EXPECT_LT(max_diff, 2e-3);
    }
  }
}

// Every architecture: a prompt run as one batch and token by token gives the same logits (f32 and q8 KV).
TEST(ArchForward, BatchedEqualsIncrementalForEveryArchitecture) {
  const auto ids = prompt_ids(48);
  for (const std::string& target : transplant_targets()) {
    if (target == "gemma2") continue;  // needs a gemma3 source: covered by PeerArchs
    SCOPED_TRACE(target);
    auto r = load_and_remove(tiny(target));
    ASSERT_TRUE(r.model) << r.error;
    const Model& m = *r.model;
    const auto nv = static_cast<size_t>(m.config().n_vocab);
    for (KvType kv : {KvType::F32, KvType::Q8}) {
      SCOPED_TRACE(kv_type_name(kv));
      const std::vector<float> batched = all_logits(m, ids, kv);
      auto b = Session::create(m, {.n_ctx = 128, .kv_type = kv, .n_threads = 1, .kv_block = 8});
      ASSERT_TRUE(b.ok());
      for (size_t i = 0; i < ids.size(); ++i) {
        auto one = (*b)->eval(std::span<const int32_t>(&ids[i], 1));
        ASSERT_TRUE(one.ok()) << one.error().message();
        for (size_t v = 0; v < nv; ++v)
          ASSERT_NEAR((*one)[v], batched[i * nv + v], 2e-4f) << "pos " << i << " token " << v;
      }
    }
  }
}

TEST(ArchOps, RopeAttentionFactorScalesTheRotation) {
  float a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
  std::copy(a, a + 8, b);
  const float factors[3] = {1.0f, 2.0f, 4.0f};
  ops::rope(a, 6, 5, 10000.0f, 1.0f, true, factors, 1.0f);
  ops::rope(b, 6, 5, 10000.0f, 1.0f, true, factors, 1.25f);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(b[i], 1.25f * a[i], 1e-5f) << i;
  EXPECT_EQ(a[6], 7.0f);  // partial rotary: the rest of the head is untouched
  EXPECT_EQ(b[7], 8.0f);
}

TEST(Transplant, RefusesTheWrongSourceAndUnknownTargets) {
  auto r = write_transplanted_model({.target = "gemma2", .from = test::stories_path().string()}, temp("x").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("is 'llama'; a gemma2 transplant takes a 'gemma3' model"), std::string::npos)
      << r.error().message();
  r = write_transplanted_model({.target = "falcon", .from = test::stories_path().string()}, temp("x").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(
                "unknown transplant architecture 'falcon' (known: llama3 mistral qwen2 qwen3 phi3 smollm3 gemma2)"),
            std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace pocketlm
