// Gemma 3: the configuration read from metadata (window, local/global layer pattern, RoPE bases, scales),
// clear errors for bad metadata, the forward pass through a sliding window (batched = incremental), and on
// the real 270M release: its layout and the KV bytes held at -c 8192 against the formula.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "gguf/writer.h"
#include "model/kv_memory.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

// A tiny Gemma 3 made from stories260K's weights: its llama.* keys as gemma3.*, a sliding window, and the
// Q/K norms and post-norms Gemma adds (all ones). `edit` may change the metadata before writing.
std::string tiny_gemma3(const std::string& name, const std::function<void(GgufWriter&)>& edit = {}) {
  auto src = GgufFile::open(test::stories_path().string());
  EXPECT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& [k, v] : src->metadata()) {
    if (k == "general.architecture")
      w.set(k, GgufValue::of_string("gemma3"));
    else if (k.rfind("llama.", 0) == 0)
      w.set("gemma3." + k.substr(6), v);
    else
      w.set(k, v);
  }
  w.set("gemma3.attention.sliding_window", GgufValue::of_u32(4));
  if (edit) edit(w);
  const int64_t head_dim = 8, n_embd = 64;
  static const std::vector<float> ones(64, 1.0f);
  const auto bytes = [](int64_t n) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ones.data()), static_cast<size_t>(n) * 4);
  };
  for (const auto& t : src->tensors()) {
    EXPECT_TRUE(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), {t.data, t.nbytes}).ok());
  }
  for (int il = 0; il < 5; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    EXPECT_TRUE(w.add_tensor(p + "attn_q_norm.weight", GgmlType::F32, {head_dim}, bytes(head_dim)).ok());
    EXPECT_TRUE(w.add_tensor(p + "attn_k_norm.weight", GgmlType::F32, {head_dim}, bytes(head_dim)).ok());
    EXPECT_TRUE(w.add_tensor(p + "post_attention_norm.weight", GgmlType::F32, {n_embd}, bytes(n_embd)).ok());
    EXPECT_TRUE(w.add_tensor(p + "post_ffw_norm.weight", GgmlType::F32, {n_embd}, bytes(n_embd)).ok());
  }
  const auto path = (std::filesystem::temp_directory_path() / name).string();
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

struct Loaded {
  std::unique_ptr<Model> model;
  std::string error;
};
Loaded load_and_remove(const std::string& path) {
  auto m = Model::load(path);
  std::filesystem::remove(path);
  if (!m.ok()) return {nullptr, m.error().message()};
  return {std::move(m).value(), ""};
}

std::vector<uint8_t> locals(const ModelConfig& c) { return c.layer_is_local; }

TEST(Gemma3Config, DefaultPatternIsFiveLocalThenOneGlobal) {
  auto r = load_and_remove(tiny_gemma3("plm_g3_default.gguf"));
  ASSERT_TRUE(r.model) << r.error;
  const ModelConfig& c = r.model->config();
  EXPECT_EQ(c.sliding_window, 4);
  EXPECT_EQ(locals(c), (std::vector<uint8_t>{1, 1, 1, 1, 1}));  // layer 5 would be the first global one
  EXPECT_EQ(c.rope_type, RopeType::NeoX);
  EXPECT_FLOAT_EQ(c.embed_scale, 8.0f);                    // sqrt(64)
  EXPECT_FLOAT_EQ(c.query_scale, 1.0f / std::sqrt(8.0f));  // head_dim 8
  EXPECT_FLOAT_EQ(c.rope_base(0), 10000.0f);
}

TEST(Gemma3Config, PatternAsPeriodOrPerLayerFlags) {
  auto period = load_and_remove(tiny_gemma3("plm_g3_period.gguf", [](GgufWriter& w) {
    w.set("gemma3.attention.sliding_window_pattern", GgufValue::of_u32(2));
    w.set("gemma3.rope.freq_base_swa", GgufValue::of_f32(500.0f));
    w.set("gemma3.rope.freq_base", GgufValue::of_f32(1e6f));
  }));
  ASSERT_TRUE(period.model) << period.error;
  const ModelConfig& c = period.model->config();
  EXPECT_EQ(locals(c), (std::vector<uint8_t>{1, 0, 1, 0, 1}));
  EXPECT_EQ(c.window(0), 4);
  EXPECT_EQ(c.window(1), 0);
  EXPECT_FLOAT_EQ(c.rope_base(0), 500.0f);  // local layers: rope.freq_base_swa
  EXPECT_FLOAT_EQ(c.rope_base(1), 1e6f);    // global layers: rope.freq_base

  auto flags = load_and_remove(tiny_gemma3("plm_g3_flags.gguf", [](GgufWriter& w) {
    w.set("gemma3.attention.sliding_window_pattern",
          GgufValue::of_array(GgufType::BOOL,
                              {GgufValue::of_bool(false), GgufValue::of_bool(true), GgufValue::of_bool(true),
                               GgufValue::of_bool(false), GgufValue::of_bool(true)}));
  }));
  ASSERT_TRUE(flags.model) << flags.error;
  EXPECT_EQ(locals(flags.model->config()), (std::vector<uint8_t>{0, 1, 1, 0, 1}));
}

TEST(Gemma3Config, BadMetadataIsAClearError) {
  auto short_array = load_and_remove(tiny_gemma3("plm_g3_bad1.gguf", [](GgufWriter& w) {
    w.set("gemma3.attention.sliding_window_pattern", GgufValue::of_array(GgufType::BOOL, {GgufValue::of_bool(true)}));
  }));
  EXPECT_NE(short_array.error.find(
                "plm_g3_bad1.gguf: metadata 'gemma3.attention.sliding_window_pattern': 1 flags for 5 layers"),
            std::string::npos)
      << short_array.error;
  auto negative = load_and_remove(tiny_gemma3(
      "plm_g3_bad2.gguf", [](GgufWriter& w) { w.set("gemma3.attention.sliding_window", GgufValue::of_i32(-3)); }));
  EXPECT_NE(negative.error.find("'gemma3.attention.sliding_window': negative"), std::string::npos) << negative.error;
  auto base = load_and_remove(tiny_gemma3(
      "plm_g3_bad3.gguf", [](GgufWriter& w) { w.set("gemma3.rope.freq_base_swa", GgufValue::of_f32(0.0f)); }));
  EXPECT_NE(base.error.find("'gemma3.rope.freq_base_swa': must be positive"), std::string::npos) << base.error;
}

TEST(Gemma3Config, MissingGemmaNormIsAClearError) {
  auto src = GgufFile::open(test::stories_path().string());
  ASSERT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& [k, v] : src->metadata())
    w.set(k.rfind("llama.", 0) == 0 ? "gemma3." + k.substr(6) : k,
          k == "general.architecture" ? GgufValue::of_string("gemma3") : v);
  for (const auto& t : src->tensors())
    ASSERT_TRUE(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), {t.data, t.nbytes}).ok());
  const auto path = (std::filesystem::temp_directory_path() / "plm_g3_nonorm.gguf").string();
  ASSERT_TRUE(w.write(path).ok());
  const auto r = load_and_remove(path);
  EXPECT_NE(r.error.find("tensor 'blk.0.attn_q_norm.weight': missing"), std::string::npos) << r.error;
}

// Through a 4-token window (every layer local here), a prompt run as one batch and token by token gives the
// same logits: both paths mask the same positions, and the window layers' block rings reuse blocks right.
TEST(Gemma3Forward, BatchedEqualsIncrementalThroughTheWindow) {
  auto r = load_and_remove(tiny_gemma3("plm_g3_fwd.gguf"));
  ASSERT_TRUE(r.model) << r.error;
  const Model& m = *r.model;
  std::vector<int32_t> ids(70);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(3 + (i * 53) % 500);
  const auto nv = static_cast<size_t>(m.config().n_vocab);
  for (KvType kv : {KvType::F32, KvType::Q8}) {
    SCOPED_TRACE(kv_type_name(kv));
    auto a = Session::create(m, {.n_ctx = 96, .kv_type = kv, .n_threads = 2, .kv_block = 8});
    auto b = Session::create(m, {.n_ctx = 96, .kv_type = kv, .n_threads = 1, .kv_block = 8});
    ASSERT_TRUE(a.ok() && b.ok());
    auto all = (*a)->eval(ids, true);
    ASSERT_TRUE(all.ok()) << all.error().message();
    const std::vector<float> batched(all->begin(), all->end());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto one = (*b)->eval(std::span<const int32_t>(&ids[i], 1));
      ASSERT_TRUE(one.ok()) << one.error().message();
      for (size_t v = 0; v < nv; ++v)
        ASSERT_NEAR((*one)[v], batched[i * nv + v], 2e-4f) << "pos " << i << " token " << v;
    }
    // The window layers hold only their window (+ one block of roll-back margin), not all 70 positions.
    EXPECT_LT((*b)->kv_bytes(), (*b)->kv_cache().layout().block_bytes() * 5 * 3);
  }
}

TEST(Gemma3Release, LayoutFromTheGguf) {
  if (!std::filesystem::exists(test::gemma3_path())) GTEST_SKIP() << "Gemma 3 absent: run scripts/fetch-models.sh";
  auto m = Model::load(test::gemma3_path().string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch, "gemma3");
  EXPECT_EQ(c.n_layer, 18);
  EXPECT_EQ(c.n_embd, 640);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.n_head_kv, 1);
  EXPECT_EQ(c.n_vocab, 262144);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.sliding_window, 512);
  for (int il = 0; il < 18; ++il) EXPECT_EQ(c.window(il), il % 6 == 5 ? 0 : 512) << "layer " << il;
  EXPECT_FLOAT_EQ(c.rope_base(0), 10000.0f);
  EXPECT_FLOAT_EQ(c.rope_base(5), 1e6f);
  EXPECT_FLOAT_EQ(c.query_scale, 1.0f / 16.0f);
  EXPECT_FLOAT_EQ(c.embed_scale, std::sqrt(640.0f));
}

// -c 8192 filled with 8,192 tokens of wikitext: the bytes the session's blocks hold (measured from the pool)
// are what the formula gives: global layers the whole context, window layers only their window's blocks.
TEST(Gemma3Release, KvBytesAtEightThousandTokensAreTheWindowFormula) {
  if (!std::filesystem::exists(test::gemma3_path())) GTEST_SKIP() << "Gemma 3 absent: run scripts/fetch-models.sh";
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under sanitizers; the release job runs it";
  auto m = Model::load(test::gemma3_path().string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  std::ifstream in(test::shared_dir() / "testdata/text/wiki.test.raw");
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int32_t> ids = (*m)->tokenizer().encode(ss.str().substr(0, 60000), true, false);
  ASSERT_GE(ids.size(), 8192u);
  ids.resize(8192);
  for (KvType kv : {KvType::F16, KvType::Q8}) {
    SCOPED_TRACE(kv_type_name(kv));
    auto s = Session::create(**m, {.n_ctx = 8192, .kv_type = kv, .n_threads = 2});
    ASSERT_TRUE(s.ok()) << s.error().message();
    ASSERT_TRUE((*s)->eval(ids).ok());
    const KvLayout& l = (*s)->kv_cache().layout();
    const size_t block = l.block_bytes();
    // Global layers: 8192 / 32 = 256 blocks each. Window layers: the blocks covering positions
    // [8192 - 512 - 32 (roll-back margin), 8192), i.e. 17 blocks, plus none more once the prompt is in.
    const KvMemoryReport r = kv_memory_report(l, 8192, kMaxBatch);
    ASSERT_EQ(r.kinds.size(), 2u);
    // Global layers: the formula 2 x 3 x 1 x 256 x 8192 x bytes per value (+ scales), all 256 blocks each.
    EXPECT_EQ(r.kinds[0].bytes, 3 * 256 * block);
    EXPECT_EQ((*s)->kv_cache().bytes_held(false), r.kinds[0].bytes);
    // Window layers: the window, the last 512-token batch and the one-block roll-back margin, i.e.
    // (512 + 512 + 32) / 32 = 33 blocks each, whatever the context length (the report's bound allows one
    // block more, for a window start that falls inside a block).
    EXPECT_EQ((*s)->kv_cache().bytes_held(true), 15 * 33 * block);
    EXPECT_EQ(r.kinds[1].tokens, 512 + kMaxBatch + 32 + 32);
    EXPECT_LE((*s)->kv_cache().peak_bytes_held(), r.total);
    std::cout << "[ gemma kv ] " << kv_type_name(kv) << " -c 8192 after 8192 tokens: held " << (*s)->kv_bytes()
              << " bytes (global " << (*s)->kv_cache().bytes_held(false) << " + window "
              << (*s)->kv_cache().bytes_held(true) << "); bound " << r.total
              << " (every layer holding the context: " << r.without_window << ")\n";
    EXPECT_LT(r.total * 5, r.without_window * 2);  // the window saves more than 60 %
  }
}

}  // namespace
}  // namespace pocketlm
