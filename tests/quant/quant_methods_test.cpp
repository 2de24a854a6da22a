// The methods that see the activations (quant/methods/): calibration statistics collected by running
// stories260K (Q, K and V share one input; the Gram diagonal is the sum of squares) and cached on disk (read
// back exactly; another model's or another data's cache, a truncated file, no calibration tokens: errors);
// folding channel scales into the norms and ffn_up leaves the float model's logits unchanged (random scales,
// SmoothQuant's and AWQ's); and AWQ never makes a group's sampled output error worse.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "gguf/reader.h"
#include "model/model.h"
#include "quant/methods/awq.h"
#include "quant/methods/calib_stats.h"
#include "quant/methods/method.h"
#include "quant/methods/weight_transform.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "test_paths.h"
#include "util/splitmix64.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class QuantMethods : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(test::stories_path())) return;
    auto file = GgufFile::open(test::stories_path().string());
    ASSERT_TRUE(file.ok());
    file_ = new GgufFile(std::move(*file));
    auto m = Model::load(test::stories_path().string());
    ASSERT_TRUE(m.ok());
    model_ = m->release();
    // Two sequences of 64 tokens from a fixed pseudo-random walk over the vocabulary.
    SplitMix64 rng(7);
    for (int s = 0; s < 2; ++s) {
      std::vector<int32_t> seq;
      for (int t = 0; t < 64; ++t)
        seq.push_back(static_cast<int32_t>(1 + rng.below(static_cast<uint64_t>(model_->config().n_vocab - 1))));
      seqs_->push_back(seq);
    }
    auto session = Session::create(*model_, SessionOptions{128, KvType::F16, 2});
    ASSERT_TRUE(session.ok());
    CalibCollector c;
    ThreadPool pool(2);
    ASSERT_TRUE(collect_calib_stats(**session, *seqs_, 64, c, pool).ok());
    stats_ = new CalibStats(c.result());
    stats_->model_id = model_fingerprint(*file_);
    stats_->data_id = tokens_fingerprint(*seqs_);
    stats_->data_name = "random walk";
  }
  static void TearDownTestSuite() {
    delete stats_;
    delete model_;
    delete file_;
  }
  void SetUp() override {
    if (!file_) GTEST_SKIP() << test::stories_path() << " missing (shared/ data folder)";
    dir_ = fs::temp_directory_path() / ("plm_qmethods_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Logits of every position of `seq` on the model in `path`.
  static std::vector<float> logits(const std::string& path, const std::vector<int32_t>& seq) {
    auto m = Model::load(path);
    EXPECT_TRUE(m.ok());
    auto s = Session::create(**m, SessionOptions{128, KvType::F32, 2});  // an f16 cache would round differently
    auto l = (*s)->eval(seq, /*all_logits=*/true);
    EXPECT_TRUE(l.ok());
    return std::vector<float>(l->begin(), l->end());
  }
  // Writes the model as F32 with `t` folded in, and returns the largest |logit difference| to the original.
  double max_logit_change(const WeightTransform& t) {
    QuantizeOptions o;
    o.target = "f32";
    o.transform = &t;
    o.progress = false;
    o.n_threads = 2;
    auto plan = plan_quantization(*file_, o);
    EXPECT_TRUE(plan.ok());
    const std::string out = (dir_ / "folded.gguf").string();
    auto r = quantize_model(*file_, *plan, o, out);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    const auto a = logits(test::stories_path().string(), (*seqs_)[0]), b = logits(out, (*seqs_)[0]);
    EXPECT_EQ(a.size(), b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    return worst;
  }

  static inline GgufFile* file_ = nullptr;
  static inline Model* model_ = nullptr;
  static inline CalibStats* stats_ = nullptr;
  static inline std::vector<std::vector<int32_t>>* seqs_ = new std::vector<std::vector<int32_t>>;
  fs::path dir_;
};

TEST_F(QuantMethods, StatisticsShareQkvInputAndMatchTheirGramDiagonal) {
  const InputStats* q = stats_->find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q, stats_->find("blk.0.attn_k.weight"));
  EXPECT_EQ(q, stats_->find("blk.0.attn_v.weight"));
  EXPECT_EQ(stats_->find("blk.0.ffn_gate.weight"), stats_->find("blk.0.ffn_up.weight"));
  EXPECT_NE(stats_->find("blk.0.ffn_down.weight"), q);
  EXPECT_EQ(q->count, 128);
  for (const InputStats& in : stats_->inputs) {
    ASSERT_EQ(in.gram.size(), static_cast<size_t>(in.n * in.n));
    for (int64_t j = 0; j < in.n; ++j) {
      EXPECT_NEAR(in.gram[static_cast<size_t>(j * in.n + j)], in.sq_sum[static_cast<size_t>(j)],
                  1e-3 * (1 + in.sq_sum[static_cast<size_t>(j)]));
      EXPECT_LE(in.mean_abs(j), in.abs_max[static_cast<size_t>(j)] + 1e-6);
      EXPECT_EQ(in.gram[static_cast<size_t>(j * in.n + (in.n - 1 - j))],
                in.gram[static_cast<size_t>((in.n - 1 - j) * in.n + j)]);
    }
  }
}

TEST_F(QuantMethods, CacheRoundTripsAndRefusesAnotherModelOrData) {
  const std::string path = (dir_ / "stats.calib").string();
  ASSERT_TRUE(write_calib_stats(*stats_, path).ok());
  auto back = read_calib_stats(path);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->weight_input, stats_->weight_input);
  ASSERT_EQ(back->inputs.size(), stats_->inputs.size());
  for (size_t i = 0; i < back->inputs.size(); ++i) {
    EXPECT_EQ(back->inputs[i].gram, stats_->inputs[i].gram);
    EXPECT_EQ(back->inputs[i].abs_sum, stats_->inputs[i].abs_sum);
    EXPECT_EQ(back->inputs[i].abs_max, stats_->inputs[i].abs_max);
  }
  EXPECT_TRUE(check_calib_stats(*back, stats_->model_id, stats_->data_id, path).ok());
  auto other = check_calib_stats(*back, "0123456789abcdef", stats_->data_id, path);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("made from another model"), std::string::npos) << other.error().message();
  auto data = check_calib_stats(*back, stats_->model_id, "0123456789abcdef", path);
  ASSERT_FALSE(data.ok());
  EXPECT_NE(data.error().message().find("other calibration data"), std::string::npos);
  // Truncated and foreign files.
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (size_t cut : {size_t{4}, size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = parse_calib_stats(std::span<const uint8_t>(bytes.data(), cut), "cut.calib");
    ASSERT_FALSE(r.ok()) << cut;
    EXPECT_NE(r.error().message().find("cut.calib: not a valid calibration cache"), std::string::npos)
        << r.error().message();
  }
  // The same model always gets the same id; another model's file another one.
  auto again = GgufFile::open(test::stories_path().string());
  EXPECT_EQ(model_fingerprint(*again), stats_->model_id);
}

TEST_F(QuantMethods, NoCalibrationTokensIsAnError) {
  auto session = Session::create(*model_, SessionOptions{128, KvType::F16, 2});
  ThreadPool pool(1);
  CalibrationRequest req;
  std::vector<std::vector<int32_t>> none;
  req.sequences = none;
  req.cache_path = (dir_ / "x.calib").string();
  req.progress = false;
  auto r = calibration_stats(*file_, **session, req, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no tokens"), std::string::npos) << r.error().message();
  EXPECT_FALSE(fs::exists(req.cache_path));
}

TEST_F(QuantMethods, FoldingScalesLeavesTheFloatModelsLogitsUnchanged) {
  const std::vector<ScaleGroup> groups = scale_groups(*file_);
  int norms = 0, linears = 0;
  for (const auto& g : groups) (g.source_is_norm ? norms : linears) += 1;
  EXPECT_EQ(norms, 2 * model_->config().n_layer);
  EXPECT_EQ(linears, model_->config().n_layer);
  // Random scales over two orders of magnitude in every group.
  WeightTransform t;
  SplitMix64 rng(3);
  for (const auto& g : groups) {
    std::vector<float> s(static_cast<size_t>(file_->tensor(g.weights.front())->ne[0]));
    for (float& v : s) v = static_cast<float>(std::exp(2.3 * (2 * rng.uniform() - 1)));
    set_group_scale(t, g, s);
  }
  EXPECT_LT(max_logit_change(t), 2e-4);
  // SmoothQuant's migration and AWQ's search (which must rescale something to make this test mean anything).
  auto sm = smooth_transform(*file_, *stats_, 0.5);
  ASSERT_TRUE(sm.ok());
  EXPECT_LT(max_logit_change(*sm), 2e-4);
  ThreadPool pool(2);
  std::vector<AwqGroupResult> report;
  auto awq = awq_search(
      *file_, *stats_, [](const std::string&) { return GgmlType::Q4_0; }, {}, nullptr, pool, &report);
  ASSERT_TRUE(awq.ok()) << awq.error().message();
  ASSERT_FALSE(report.empty());
  int rescaled = 0;
  for (const auto& g : report) {
    EXPECT_LE(g.error_after, g.error_before) << g.source;
    rescaled += g.alpha > 0 ? 1 : 0;
  }
  EXPECT_GT(rescaled, 0);
  EXPECT_LT(max_logit_change(*awq), 2e-4);
}

}  // namespace
}  // namespace pocketlm
