// Synthetic models: random-weight GGUFs of real shapes that pocketlm and llama.cpp both load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "bench/random_weights.h"
#include "bench/synthetic_model.h"
#include "e2e/cli_runner.h"
#include "e2e/peer_client.h"
#include "formats/dequantize.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("plm_synth_" + std::to_string(::getpid()) + "_" + name);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(RandomWeights, BlocksAreFiniteWithRealisticSpread) {
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                     GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const int64_t n = 256 * 64;
    std::vector<uint8_t> bytes(row_size(t, n));
    ASSERT_TRUE(fill_random_weights(t, n, 7, bytes).ok());
    std::vector<float> w(static_cast<size_t>(n));
    dequantize_row(t, bytes.data(), w.data(), n);
    double sum = 0, sq = 0;
    for (float v : w) {
      ASSERT_TRUE(std::isfinite(v)) << type_traits(t).name;
      sum += v;
      sq += static_cast<double>(v) * v;
    }
    const double mean = sum / static_cast<double>(n);
    const double sd = std::sqrt(sq / static_cast<double>(n) - mean * mean);
    EXPECT_GT(sd, 0.005) << type_traits(t).name;  // sigma 0.02 asked; block scales jitter ±50 %
    EXPECT_LT(sd, 0.08) << type_traits(t).name;
    EXPECT_LT(std::fabs(mean), 0.02) << type_traits(t).name;
    std::vector<uint8_t> again(bytes.size());
    ASSERT_TRUE(fill_random_weights(t, n, 7, again).ok());
    EXPECT_EQ(bytes, again);
    ASSERT_TRUE(fill_random_weights(t, n, 8, again).ok());
    EXPECT_NE(bytes, again);
  }
  std::vector<uint8_t> small(10);
  EXPECT_FALSE(fill_random_weights(GgmlType::Q4_0, 32, 1, small).ok());
  EXPECT_FALSE(fill_random_weights(GgmlType::Q4_0, 33, 1, small).ok());
}

TEST(SynthModel, SmolLM2ShapeLoadsInPocketlmAndLlamaCpp) {
  if (!fs::exists(test::smollm2_path())) GTEST_SKIP() << test::smollm2_path() << " absent (scripts/fetch-models.sh)";
  const fs::path out = temp_path("smollm2.gguf");
  auto r = test::run_cli({"synth", "--shape", "smollm2-135m", "--type", "Q4_K_M", "--seed", "3", "-q",
                          "--tokenizer-from", test::smollm2_path().string(), "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vocab 49152"), std::string::npos) << r.out;

  auto m = Model::load(out.string());
  ASSERT_TRUE(m.ok()) << m.error().message();
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.n_embd, 576);
  EXPECT_EQ(c.n_layer, 30);
  EXPECT_EQ(c.n_head, 9);
  EXPECT_EQ(c.n_head_kv, 3);
  EXPECT_EQ(c.n_ff, 1536);
  EXPECT_EQ(c.n_vocab, 49152);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ((*m)->weights().token_embd->type, GgmlType::Q8_0);
  // The real tokenizer came along.
  auto real = Model::load(test::smollm2_path().string());
  ASSERT_TRUE(real.ok());
  EXPECT_EQ((*m)->tokenizer().encode("Hello world", false, false),
            (*real)->tokenizer().encode("Hello world", false, false));
  // A forward pass gives finite logits.
  SessionOptions so;
  so.n_ctx = 64;
  so.n_threads = 2;
  auto s = Session::create(**m, so);
  ASSERT_TRUE(s.ok());
  std::vector<int32_t> ids = {1, 2, 3, 4};
  auto logits = (*s)->eval(ids);
  ASSERT_TRUE(logits.ok());
  for (float v : *logits) ASSERT_TRUE(std::isfinite(v));

  if (test::peer_binary()) {
    const auto info = test::run_peer({"info", "-m", out.string()});
    EXPECT_EQ(info.at("n_vocab").get<int>(), 49152);
    EXPECT_EQ(info.at("n_layer").get<int>(), 30);
    EXPECT_EQ(info.at("n_embd").get<int>(), 576);
  }
  fs::remove(out);
}

TEST(SynthModel, DeterministicFromTheSeedAndCheckedArguments) {
  if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " absent";
  SynthOptions o;
  o.shape = SynthShape{"tiny", "test", 256, 2, 4, 2, 512, 512, 10000.0, 1e-5, false};
  o.recipe = "Q4_0";
  o.tokenizer_from = test::stories_path().string();
  o.progress = false;
  const fs::path a = temp_path("a.gguf"), b = temp_path("b.gguf"), c = temp_path("c.gguf");
  ASSERT_TRUE(write_synthetic_model(o, a.string()).ok());
  ASSERT_TRUE(write_synthetic_model(o, b.string()).ok());
  o.seed = 2;
  auto rc = write_synthetic_model(o, c.string());
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(slurp(a), slurp(b));
  EXPECT_NE(slurp(a), slurp(c));
  EXPECT_EQ(fs::file_size(c), GgufFile::open(c.string())->file_size());
  auto f = GgufFile::open(c.string());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->tensor("output.weight")->type, GgmlType::Q6_K);
  EXPECT_EQ(f->tensor("token_embd.weight")->type, GgmlType::Q4_0);
  EXPECT_EQ(*f->get_int("general.file_type"), 2);

  auto bad = test::run_cli({"synth", "--shape", "llama-2b", "-o", c.string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("llama-1b"), std::string::npos) << bad.err;
  bad = test::run_cli({"synth", "--shape", "llama-1b", "--type", "Q9", "--tokenizer-from",
                       test::stories_path().string(), "-o", c.string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("Q4_K_M"), std::string::npos) << bad.err;
  bad = test::run_cli({"synth", "--shape", "llama-1b", "--tokenizer-from", a.string() + ".missing", "-o", c.string()});
  EXPECT_NE(bad.exit_code, 0);
  for (const auto& p : {a, b, c}) fs::remove(p);
}

}  // namespace
}  // namespace pocketlm
