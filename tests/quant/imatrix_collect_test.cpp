// Collecting an imatrix: the matmul observer sees each product's f32 input once per weight, only on the
// thread that installed it and only while installed; the collector records llama-imatrix's weights (blk.*,
// output.weight on request) with exact sums and counts and skips products under 16 rows; text chunking puts
// BOS at the head of each chunk; a whole run on stories260K counts every token for every layer weight and
// does not depend on the forward-call size or the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "eval/task_runner.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "quant/imatrix_collect.h"
#include "runtime/session.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

// An F32 weight of `rows` x `cols` over owned storage.
struct TestWeight {
  std::vector<float> data;
  GgufTensor t;
  TestWeight(std::string name, int64_t cols, int64_t rows) : data(static_cast<size_t>(cols * rows), 0.5f) {
    t.name = std::move(name);
    t.type = GgmlType::F32;
    t.n_dims = 2;
    t.ne[0] = cols;
    t.ne[1] = rows;
    t.data = reinterpret_cast<const uint8_t*>(data.data());
    t.nbytes = data.size() * sizeof(float);
  }
};

struct Recorder final : MatmulObserver {
  std::vector<std::string> names;
  std::vector<int64_t> tokens;
  void observe(const GgufTensor& w, int64_t, int64_t, const float*, int64_t n) override {
    names.push_back(w.name);
    tokens.push_back(n);
  }
};

std::vector<float> random_rows(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n * k));
  for (float& v : x) v = d(rng);
  return x;
}

TEST(ImatrixCollect, ObserverSeesEveryTargetOnlyWhileInstalledOnItsThread) {
  ThreadPool pool(2);
  std::vector<uint8_t> scratch;
  TestWeight a("blk.0.ffn_gate.weight", 32, 8), b("blk.0.ffn_up.weight", 32, 16);
  const std::vector<float> x = random_rows(4, 32, 1);
  std::vector<float> ya(4 * 8), yb(4 * 16);
  Recorder outer, inner;
  matmul(a.t, x.data(), 4, ya.data(), pool, scratch);  // nobody watching
  {
    const ScopedMatmulObserver w1(outer);
    matmul(a.t, x.data(), 4, ya.data(), pool, scratch);
    {
      const ScopedMatmulObserver w2(inner);
      const MatmulTarget both[] = {{&a.t, 0, 8, ya.data()}, {&b.t, 0, 16, yb.data()}};
      matmul_many(both, x.data(), 4, pool, scratch);
    }
    // Another thread's products are not this thread's observer's business.
    std::thread other([&] {
      ThreadPool p2(1);
      std::vector<uint8_t> s2;
      std::vector<float> y2(4 * 8);
      matmul(a.t, x.data(), 4, y2.data(), p2, s2);
    });
    other.join();
    matmul(b.t, x.data(), 3, yb.data(), pool, scratch);  // back to the outer observer
  }
  matmul(a.t, x.data(), 4, ya.data(), pool, scratch);  // uninstalled again
  EXPECT_EQ(outer.names, (std::vector<std::string>{"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight"}));
  EXPECT_EQ(outer.tokens, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(inner.names, (std::vector<std::string>{"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight"}));
  // The product itself is unchanged by watching.
  float expect = 0;
  for (int j = 0; j < 32; ++j) expect += 0.5f * x[static_cast<size_t>(j)];
  EXPECT_NEAR(ya[0], expect, 1e-4f);
}

TEST(ImatrixCollect, SumsSquaresAndCountsLikeLlamaImatrix) {
  ThreadPool pool(2);
  std::vector<uint8_t> scratch;
  TestWeight q("blk.3.attn_q.weight", 40, 8), out("output.weight", 40, 8), emb("token_embd.weight", 40, 8);
  const std::vector<float> x1 = random_rows(20, 40, 2), x2 = random_rows(17, 40, 3), small = random_rows(15, 40, 4);
  std::vector<float> y(20 * 8);
  for (bool process_output : {false, true}) {
    ImatrixCollectOptions o;
    o.process_output = process_output;
    ImatrixCollector c(o);
    {
      const ScopedMatmulObserver w(c);
      for (const TestWeight* tw : {&q, &out, &emb}) {
        matmul(tw->t, x1.data(), 20, y.data(), pool, scratch);
        matmul(tw->t, x2.data(), 17, y.data(), pool, scratch);
        matmul(tw->t, small.data(), 15, y.data(), pool, scratch);  // under 16 rows: ignored
      }
      // A weight computed in two row ranges counts its input once.
      matmul_rows(q.t, 0, 4, x1.data(), 20, y.data(), pool, scratch);
      matmul_rows(q.t, 4, 8, x1.data(), 20, y.data(), pool, scratch);
    }
    EXPECT_TRUE(c.problem().empty());
    const Imatrix im = c.result(/*chunk_size=*/16, {"calib.txt"});
    ASSERT_EQ(im.entries.size(), process_output ? 2u : 1u);
    EXPECT_EQ(im.datasets, std::vector<std::string>{"calib.txt"});
    EXPECT_EQ(im.chunk_size, 16);
    EXPECT_EQ(im.chunk_count, (20 + 17 + 20) / 16);  // the largest count over the chunk size
    for (const ImatrixEntry& e : im.entries) {
      const bool is_q = e.name == "blk.3.attn_q.weight";
      EXPECT_TRUE(is_q || e.name == "output.weight") << e.name;
      EXPECT_EQ(e.n_cols, 40);
      EXPECT_EQ(e.counts, std::vector<float>{is_q ? 57.0f : 37.0f}) << e.name;
      for (int64_t j = 0; j < 40; ++j) {
        double s = 0;
        for (int64_t t = 0; t < 20; ++t) s += (is_q ? 2.0 : 1.0) * std::pow(x1[static_cast<size_t>(t * 40 + j)], 2);
        for (int64_t t = 0; t < 17; ++t) s += std::pow(x2[static_cast<size_t>(t * 40 + j)], 2);
        EXPECT_NEAR(e.sums[static_cast<size_t>(j)], s, 1e-5 * s) << e.name << " column " << j;
      }
    }
  }
}

TEST(ImatrixCollect, AWeightIsKnownByNameNotByAddress) {
  ThreadPool pool(1);
  std::vector<uint8_t> scratch;
  TestWeight w("blk.0.attn_v.weight", 32, 4);
  const std::vector<float> x = random_rows(16, 32, 6);
  std::vector<float> y(16 * 4);
  ImatrixCollector c;
  {
    const ScopedMatmulObserver watch(c);
    for (int i = 0; i < 2; ++i) {
      const GgufTensor view = w.t;  // a temporary view, as a forward pass may make
      matmul(view, x.data(), 16, y.data(), pool, scratch);
    }
    TestWeight wide("blk.0.attn_v.weight", 64, 4);  // the same name with another width: a problem
    const std::vector<float> x2 = random_rows(16, 64, 7);
    matmul(wide.t, x2.data(), 16, y.data(), pool, scratch);
  }
  const Imatrix im = c.result(16, {});
  ASSERT_EQ(im.entries.size(), 1u);
  EXPECT_EQ(im.entries[0].counts, std::vector<float>{32.0f});
  EXPECT_NE(c.problem().find("blk.0.attn_v.weight was seen with rows of 32 and of 64 values"), std::string::npos)
      << c.problem();
}

TEST(ImatrixCollect, NonFiniteActivationsAreAProblemNamingTheWeight) {
  ThreadPool pool(1);
  std::vector<uint8_t> scratch;
  TestWeight w("blk.1.ffn_down.weight", 32, 4);
  std::vector<float> x = random_rows(16, 32, 5), y(16 * 4);
  x[5 * 32 + 7] = std::numeric_limits<float>::infinity();
  ImatrixCollector c;
  {
    const ScopedMatmulObserver watch(c);
    matmul(w.t, x.data(), 16, y.data(), pool, scratch);
  }
  EXPECT_NE(c.problem().find("blk.1.ffn_down.weight"), std::string::npos) << c.problem();
  EXPECT_NE(c.problem().find("column 7"), std::string::npos) << c.problem();
}

class ImatrixStories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << "no stories260K.gguf in shared/models";
    auto m = Model::load(test::stories_path().string());
    ASSERT_TRUE(m.ok()) << m.error().message();
    model_ = std::move(m).value();
  }
  Imatrix run(const std::vector<std::vector<int32_t>>& seqs, int64_t n_batch, int threads, bool process_output) {
    SessionOptions so;
    so.n_ctx = 128;
    so.n_threads = threads;
    auto s = Session::create(*model_, so);
    EXPECT_TRUE(s.ok());
    ImatrixCollectOptions o;
    o.process_output = process_output;
    ImatrixCollector c(o);
    const Status st = collect_imatrix(**s, seqs, n_batch, process_output, c);
    EXPECT_TRUE(st.ok()) << st.error().message();
    return c.result(128, {"text"});
  }
  std::unique_ptr<Model> model_;
};

TEST_F(ImatrixStories, TextChunksStartWithBos) {
  const Tokenizer& tok = model_->tokenizer();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Once upon a time there was a little girl who liked to play in the park. ";
  const std::vector<int32_t> ids = tok.encode(text, true, false);
  ASSERT_GT(ids.size(), 300u);
  auto chunks = imatrix_text_chunks(tok, ids, 100, -1, "t.txt");
  ASSERT_TRUE(chunks.ok()) << chunks.error().message();
  ASSERT_EQ(chunks->size(), ids.size() / 100);
  for (size_t c = 0; c < chunks->size(); ++c) {
    const auto& ch = (*chunks)[c];
    ASSERT_EQ(ch.size(), 100u);
    EXPECT_EQ(ch[0], tok.bos());
    for (size_t i = 1; i < 100; ++i) ASSERT_EQ(ch[i], ids[c * 100 + i]);
  }
  auto two = imatrix_text_chunks(tok, ids, 100, 2, "t.txt");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  auto too_long = imatrix_text_chunks(tok, std::span(ids).first(50), 100, -1, "t.txt");
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message().find("t.txt: the text is 50 tokens, shorter than one chunk of 100"),
            std::string::npos)
      << too_long.error().message();
}

TEST_F(ImatrixStories, EveryLayerWeightSeesEveryTokenWhateverTheBatchAndThreads) {
  const Tokenizer& tok = model_->tokenizer();
  std::string text;
  for (int i = 0; i < 30; ++i) text += "Tom and Lily went to the park. They saw a big dog and a red ball. ";
  auto chunks = imatrix_text_chunks(tok, tok.encode(text, true, false), 128, 3, "t");
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 3u);
  const Imatrix a = run(*chunks, 128, 1, false);
  // 5 layers x (q, k, v, output, gate, up, down); token_embd is a lookup, output.weight not asked for.
  ASSERT_EQ(a.entries.size(), 35u);
  for (const ImatrixEntry& e : a.entries) {
    EXPECT_TRUE(e.name.starts_with("blk.")) << e.name;
    EXPECT_EQ(e.counts, std::vector<float>{384.0f}) << e.name;
  }
  EXPECT_EQ(a.chunk_count, 3);
  // Q, K and V share their input, so their sums are equal.
  const ImatrixEntry *q = a.find("blk.2.attn_q.weight"), *k = a.find("blk.2.attn_k.weight");
  ASSERT_TRUE(q && k);
  EXPECT_EQ(q->sums, k->sums);
  // Every column of a real model's input carries some signal.
  for (float s : q->sums) EXPECT_GT(s, 0.0f);
  // Forward calls of 50 tokens (pieces of 42-43) and two threads: the same sums up to float rounding.
  const Imatrix b = run(*chunks, 50, 2, true);
  ASSERT_EQ(b.entries.size(), 36u);
  ASSERT_NE(b.find("output.weight"), nullptr);
  EXPECT_EQ(b.find("output.weight")->counts, std::vector<float>{384.0f});
  for (const ImatrixEntry& e : a.entries) {
    const ImatrixEntry* o = b.find(e.name);
    ASSERT_NE(o, nullptr) << e.name;
    EXPECT_EQ(o->counts, e.counts);
    for (size_t j = 0; j < e.sums.size(); ++j)
      ASSERT_NEAR(o->sums[j], e.sums[j], 1e-4 * e.sums[j] + 1e-6) << e.name << " column " << j;
  }
}

}  // namespace
}  // namespace pocketlm

namespace pocketlm {
namespace {

// SmolLM2's ChatML template: the user turn holds the task prompt `pocketlm eval` sends, the assistant turn
// the first reference; without answers the sequence ends at the opening of the assistant turn.
TEST(ImatrixTasks, ExamplesAreRenderedThroughTheChatTemplate) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "no SmolLM2 (scripts/fetch-models.sh)";
  auto m = Model::load(test::smollm2_path().string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  const Tokenizer& tok = (*m)->tokenizer();
  auto tmpl = (*m)->gguf().get_string("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok());
  TaskExample ex;
  ex.id = "1";
  ex.kind = TaskKind::CommitMessage;
  ex.task = "commit_message";
  ex.input = "--- a/x.c\n+++ b/x.c\n-int x = 1;\n+int x = 2;";
  ex.references = {"Set x to 2", "Change x"};
  TaskExample tiny = ex;
  tiny.input = "x";
  const auto prompts = [&](bool with_answer) {
    return std::vector<CalibrationPrompt>{{task_turn(ex, with_answer), "a:1"}, {task_turn(tiny, with_answer), "a:2"}};
  };
  auto with = imatrix_prompt_sequences(tok, *tmpl, prompts(true), 512, -1, 16);
  ASSERT_TRUE(with.ok()) << with.error().message();
  ASSERT_EQ(with->sequences.size(), 2u);
  const std::string text = tok.decode(with->sequences[0], /*render_special=*/true);
  EXPECT_NE(text.find("<|im_start|>user\nHere is a code change (a diff):\n\n--- a/x.c"), std::string::npos) << text;
  EXPECT_NE(text.find("+int x = 2;\nWrite a one-line git commit message that describes this change. Reply with the "
                      "message only, no code.<|im_end|>\n<|im_start|>assistant\nSet x to 2<|im_end|>"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("Change x"), std::string::npos) << text;
  auto without = imatrix_prompt_sequences(tok, *tmpl, prompts(false), 512, 1, 16);
  ASSERT_TRUE(without.ok());
  ASSERT_EQ(without->sequences.size(), 1u);  // at most one example
  const std::string prompt = tok.decode(without->sequences[0], true);
  EXPECT_TRUE(prompt.ends_with("<|im_start|>assistant\n")) << prompt;
  EXPECT_EQ(prompt.find("Set x to 2"), std::string::npos);
  // Cut to -c, and counted; an example under the minimum is skipped and counted.
  auto cut = imatrix_prompt_sequences(tok, *tmpl, prompts(true), 56, -1, 56);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->truncated, 1);  // the diff; the one-letter input renders under 56 tokens
  EXPECT_EQ(cut->too_short, 1);
  ASSERT_EQ(cut->sequences.size(), 1u);
  EXPECT_EQ(cut->sequences[0].size(), 56u);
  auto none = imatrix_prompt_sequences(tok, *tmpl, prompts(false), 512, -1, 100000);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("no calibration example gives at least 100000 tokens"), std::string::npos);
  EXPECT_EQ(with->too_short, 0);
  // Without a template (a base model): the completion-style prompt, a space, the answer.
  auto plain = imatrix_prompt_sequences(tok, "", prompts(true), 512, 1, 16);
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  const std::string ptext = tok.decode(plain->sequences[0], true);
  EXPECT_NE(ptext.find("Diff:\n--- a/x.c"), std::string::npos) << ptext;
  EXPECT_TRUE(ptext.ends_with("+int x = 2;\n\nCommit message (one line): Set x to 2\n")) << ptext;
  EXPECT_EQ(ptext.find("<|im_start|>"), std::string::npos) << ptext;
}

}  // namespace
}  // namespace pocketlm
