// Model loading validates the GGUF against the architecture: every failure names the file and the tensor or key.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "gguf/writer.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

// Copies stories260K into a new file, letting the test change metadata and tensors on the way.
struct Rewrite {
  std::function<void(GgufWriter&)> edit_kv = [](GgufWriter&) {};
  std::string drop_tensor;
  std::string reshape_tensor;  // written with ne[0] and ne[1] swapped
};

std::string rewrite(const Rewrite& r, const std::string& name) {
  auto src = GgufFile::open(test::stories_path().string());
  EXPECT_TRUE(src.ok());
  GgufWriter w;
  for (const auto& [k, v] : src->metadata()) w.set(k, v);
  r.edit_kv(w);
  for (const auto& t : src->tensors()) {
    if (t.name == r.drop_tensor) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    if (t.name == r.reshape_tensor && ne.size() == 2) std::swap(ne[0], ne[1]);
    EXPECT_TRUE(w.add_tensor(t.name, t.type, ne, {t.data, t.nbytes}).ok());
  }
  const auto path = (std::filesystem::temp_directory_path() / name).string();
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

std::string load_error(const std::string& path) {
  auto m = Model::load(path);
  std::filesystem::remove(path);
  return m.ok() ? "<loaded>" : m.error().message();
}

TEST(ModelLoad, LoadsStories260K) {
  auto m = Model::load(test::stories_path().string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_FALSE(c.tied_embeddings);
}

TEST(ModelLoad, UnknownArchitectureIsAClearError) {
  Rewrite r;
  r.edit_kv = [](GgufWriter& w) { w.set("general.architecture", GgufValue::of_string("mamba9")); };
  const std::string e = load_error(rewrite(r, "plm_arch.gguf"));
  EXPECT_NE(e.find("plm_arch.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("unsupported architecture 'mamba9'"), std::string::npos) << e;
}

TEST(ModelLoad, MissingTensorIsAClearError) {
  Rewrite r;
  r.drop_tensor = "blk.3.ffn_up.weight";
  const std::string e = load_error(rewrite(r, "plm_missing.gguf"));
  EXPECT_NE(e.find("tensor 'blk.3.ffn_up.weight': missing"), std::string::npos) << e;
}

TEST(ModelLoad, WrongShapeIsAClearError) {
  Rewrite r;
  r.reshape_tensor = "blk.1.attn_k.weight";
  const std::string e = load_error(rewrite(r, "plm_shape.gguf"));
  EXPECT_NE(e.find("tensor 'blk.1.attn_k.weight': shape [32, 64], expected [64, 32]"), std::string::npos) << e;
}

TEST(ModelLoad, BadHyperParameterIsAClearError) {
  Rewrite r;
  r.edit_kv = [](GgufWriter& w) { w.set("llama.attention.head_count_kv", GgufValue::of_u32(3)); };
  const std::string e = load_error(rewrite(r, "plm_hp.gguf"));
  EXPECT_NE(e.find("'llama.attention.head_count_kv': 3 does not divide head_count 8"), std::string::npos) << e;
}

TEST(ModelLoad, NonGgufFileIsAClearError) {
  const std::string e = load_error((test::shared_dir() / "models" / "stories260K.bin").string() + ".copy");
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
  auto m = Model::load((test::shared_dir() / "models" / "tok512.bin").string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("not a GGUF file"), std::string::npos) << m.error().message();
}

TEST(Session, ContextOverflowIsAnErrorNotACrash) {
  auto m = Model::load(test::stories_path().string());
  ASSERT_TRUE(m.ok());
  auto s = Session::create(**m, SessionOptions{.n_ctx = 8, .kv_type = KvType::F32, .n_threads = 1});
  ASSERT_TRUE(s.ok());
  std::vector<int32_t> ids(9, 5);
  auto r = (*s)->eval(ids);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("context overflow"), std::string::npos);
  std::vector<int32_t> bad{1, 600};
  auto r2 = (*s)->eval(bad);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("token id 600 out of range"), std::string::npos);
}

// Batched prefill and token-by-token decode compute the same logits.
TEST(Session, BatchedPrefillMatchesIncrementalDecode) {
  auto m = Model::load(test::stories_path().string());
  ASSERT_TRUE(m.ok());
  const std::vector<int32_t> ids{1, 403, 407, 261, 378, 300, 290};
  auto a = Session::create(**m, {.n_ctx = 64, .kv_type = KvType::F32, .n_threads = 2});
  auto b = Session::create(**m, {.n_ctx = 64, .kv_type = KvType::F32, .n_threads = 1});
  ASSERT_TRUE(a.ok() && b.ok());
  auto all = (*a)->eval(ids, true);
  ASSERT_TRUE(all.ok());
  std::vector<float> batched(all->begin(), all->end());
  for (size_t i = 0; i < ids.size(); ++i) {
    auto one = (*b)->eval(std::span<const int32_t>(&ids[i], 1));
    ASSERT_TRUE(one.ok());
    for (size_t v = 0; v < 512; ++v)
      ASSERT_NEAR((*one)[v], batched[i * 512 + v], 1e-4f) << "pos " << i << " token " << v;
  }
}

// A prompt longer than one forward batch (512 tokens): the batches before the last skip the output head,
// and the last-token logits equal those of a run that keeps every position's logits.
TEST(Session, MultiBatchPromptLastLogitsMatchAllLogits) {
  auto m = Model::load(test::stories_path().string());
  ASSERT_TRUE(m.ok());
  std::vector<int32_t> ids(600);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(3 + (i * 37) % 500);
  auto a = Session::create(**m, {.n_ctx = 700, .kv_type = KvType::F32, .n_threads = 2});
  auto b = Session::create(**m, {.n_ctx = 700, .kv_type = KvType::F32, .n_threads = 2});
  ASSERT_TRUE(a.ok() && b.ok());
  auto last = (*a)->eval(ids);
  ASSERT_TRUE(last.ok());
  std::vector<float> got(last->begin(), last->end());
  auto all = (*b)->eval(ids, true);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(got.size(), 512u);
  for (size_t v = 0; v < 512; ++v) EXPECT_EQ(got[v], (*all)[(ids.size() - 1) * 512 + v]) << v;
  EXPECT_EQ((*a)->n_past(), 600);
}

}  // namespace
}  // namespace pocketlm
