// eval::run_perplexity, the library call behind `pocketlm perplexity`: a perplexity run, a run that saves the
// base's log-probs, a KL-divergence run of the same model against them, and its errors (no CLI involved).
#include "eval/perplexity_run.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class EvalPerplexityRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
    auto m = Model::load(test::stories_path().string());
    ASSERT_TRUE(m.ok()) << m.error().message();
    model_ = std::move(m).value();
    dir_ = fs::temp_directory_path() / ("plm_ppl_run_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    text_ = (dir_ / "text.txt").string();
    std::ifstream in(test::shared_dir() / "testdata/text/tinystories-val.dev.txt");
    std::string s(6000, '\0');
    in.read(s.data(), static_cast<std::streamsize>(s.size()));
    s.resize(static_cast<size_t>(in.gcount()));
    std::ofstream(text_) << s;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  eval::PerplexityJob job(int64_t n_ctx, int64_t chunks) const {
    eval::PerplexityJob j;
    j.text_path = text_;
    j.n_ctx = n_ctx;
    j.max_chunks = chunks;
    j.session.n_threads = 2;
    return j;
  }
  std::unique_ptr<Model> model_;
  fs::path dir_;
  std::string text_;
};

TEST_F(EvalPerplexityRun, ScoresChunksSavesLogProbsAndScoresItselfAgainstThem) {
  eval::PerplexityJob j = job(64, 3);
  j.save_logits = (dir_ / "base.plm").string();
  int64_t chunks_seen = 0, tokens = 0, total = 0;
  std::string temp_file;
  eval::PerplexityEvents ev;
  ev.start = [&](int64_t t) { total = t; };
  ev.tokens_done = [&](int64_t n) { tokens += n; };
  ev.ppl_chunk = [&](int64_t chunk, double ppl) {
    EXPECT_EQ(chunk, ++chunks_seen);
    EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << ppl;
  };
  ev.partial_file = [&](const std::string& p) { temp_file = p; };
  auto r = eval::run_perplexity(*model_, test::stories_path().string(), j, ev);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(chunks_seen, 3);
  EXPECT_EQ(total, 3 * 64);
  EXPECT_EQ(tokens, 3 * 64);
  ASSERT_TRUE(r->ppl.has_value());
  EXPECT_EQ(r->ppl->count, 3 * r->scored_per_chunk);
  EXPECT_EQ(r->ppl->running_ppl.size(), 3u);
  EXPECT_DOUBLE_EQ(r->ppl->ppl(), r->ppl->running_ppl.back());
  EXPECT_TRUE(temp_file.empty()) << "the partial file is reported gone once renamed";
  ASSERT_TRUE(r->saved_bytes.has_value());
  EXPECT_EQ(*r->saved_bytes, fs::file_size(j.save_logits));
  EXPECT_EQ(r->to_json().at("ppl").get<double>(), r->ppl->ppl());

  // The same model against its own saved log-probs: the only difference is the file's quantization.
  eval::PerplexityJob k;
  k.base_logits = j.save_logits;
  k.session.n_threads = 2;
  auto kr = eval::run_perplexity(*model_, test::stories_path().string(), k);
  ASSERT_TRUE(kr.ok()) << kr.error().message();
  ASSERT_TRUE(kr->kld.has_value());
  EXPECT_EQ(kr->n_ctx, 64) << "the chunk size comes from the base file";
  EXPECT_LT(kr->kld->kld.value, 1e-3);
  EXPECT_GT(kr->kld->same_top.value, 0.99);
  EXPECT_NEAR(kr->kld->ppl.value, r->ppl->ppl(), 1e-3 * r->ppl->ppl());
  EXPECT_NE(eval::format_kld_report(*kr->kld).find("Mean    KLD:"), std::string::npos);
}

TEST_F(EvalPerplexityRun, BadJobsAreErrorsThatNameTheProblemAndWriteNothing) {
  const std::string out = (dir_ / "never.plm").string();
  {  // no text at all
    eval::PerplexityJob j = job(64, 1);
    j.text_path.clear();
    auto r = eval::run_perplexity(*model_, "m", j);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("no text"), std::string::npos) << r.error().message();
  }
  {  // a chunk longer than the text
    eval::PerplexityJob j = job(100000, 1);
    j.save_logits = out;
    auto r = eval::run_perplexity(*model_, "m", j);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("shorter than one chunk of 100000 tokens"), std::string::npos)
        << r.error().message();
    EXPECT_EQ(r.error().message().find("-c"), std::string::npos) << "library errors name no CLI flag";
  }
  {  // chunks too small: about the chunk size setting
    auto r = eval::run_perplexity(*model_, "m", job(2, 1));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().setting(), "n_ctx") << r.error().message();
  }
  {  // the output would overwrite the input text
    eval::PerplexityJob j = job(64, 1);
    j.save_logits = text_;
    auto r = eval::run_perplexity(*model_, "m", j);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("would overwrite the input"), std::string::npos) << r.error().message();
  }
  {  // a base file that is not one
    eval::PerplexityJob j;
    j.base_logits = text_;
    auto r = eval::run_perplexity(*model_, "m", j);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find(text_), std::string::npos) << r.error().message();
  }
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace pocketlm
