// `pocketlm quantize --method` as a user runs it on stories260K: a second recipe reads the calibration cache
// the first one wrote; a cache made from another model, a NaN in the weights and an empty calibration text are
// clear errors that leave no output file; the AWQ+GPTQ file is a standard GGUF that llama.cpp runs with the
// same greedy continuation as pocketlm.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "e2e/cli_runner.h"
#include "e2e/peer_client.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class QuantizeMethodsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing (shared/ data folder)";
    dir_ = fs::temp_directory_path() / ("plm_qmcli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "in");
    std::ifstream f(test::shared_dir() / "testdata/text/tinystories-val.dev.txt");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    text.resize(std::min<size_t>(text.size(), 20000));
    std::ofstream(dir_ / "in/calib.txt") << text;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string calib() const { return path("in/calib.txt"); }
  std::vector<std::string> quantize(const std::string& in, const std::string& out, const std::string& type,
                                    const std::string& method) const {
    return {"quantize",
            in,
            out,
            type,
            "--method",
            method,
            "--calib",
            calib(),
            "--calib-ctx",
            "128",
            "--calib-tokens",
            "1024",
            "--calib-cache",
            path("in/stats.calib"),
            "-t",
            "2"};
  }
  // A copy of stories260K with element 5 of blk.0.attn_q.weight set to v.
  std::string patched(const std::string& name, float v) const {
    const std::string out = path("in/" + name);
    fs::copy_file(test::stories_path(), out);
    auto g = GgufFile::open(out);
    EXPECT_TRUE(g.ok());
    const GgufTensor* t = g->tensor("blk.0.attn_q.weight");
    const uint64_t at = g->data_offset() + t->offset + 5 * sizeof(float);
    std::fstream f(out, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(reinterpret_cast<const char*>(&v), sizeof v);
    return out;
  }
  std::vector<std::string> outputs() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().filename() != "in") names.push_back(e.path().filename().string());
    return names;
  }
  fs::path dir_;
};

TEST_F(QuantizeMethodsCli, SecondRecipeReadsTheCacheAndBadInputsLeaveNoFile) {
  const std::string in = test::stories_path().string();
  auto r = test::run_cli(quantize(in, path("gptq.gguf"), "Q4_0", "gptq"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("collected and cached in " + path("in/stats.calib")), std::string::npos) << r.err;
  auto g = GgufFile::open(path("gptq.gguf"));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g->get_string("quantize.method"), "gptq");
  r = test::run_cli(quantize(in, path("awq.gguf"), "Q8_0", "awq+gptq"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("read from " + path("in/stats.calib")), std::string::npos) << r.err;
  fs::remove(path("gptq.gguf"));
  fs::remove(path("awq.gguf"));

  // The cache belongs to stories260K: another model (one weight changed) is refused.
  r = test::run_cli(quantize(patched("other.gguf", 0.125f), path("other-q4_0.gguf"), "Q4_0", "gptq"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the calibration cache was made from another model"), std::string::npos) << r.err;
  // A NaN weight: named before any calibration runs.
  r = test::run_cli(quantize(patched("nan.gguf", std::nanf("")), path("nan-q4_0.gguf"), "Q4_0", "awq"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tensor 'blk.0.attn_q.weight' element 5 (row 0, column 5) is NaN"), std::string::npos) << r.err;
  // An empty calibration text.
  std::ofstream(path("in/empty.txt")).flush();
  auto args = quantize(in, path("empty-q4_0.gguf"), "Q4_0", "gptq");
  args[7] = path("in/empty.txt");
  args[13] = path("in/empty.calib");
  r = test::run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("empty.txt: the calibration text is empty"), std::string::npos) << r.err;
  // A method that needs calibration, without any.
  r = test::run_cli({"quantize", in, path("nocalib.gguf"), "Q4_0", "--method", "awq"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs calibration data"), std::string::npos) << r.err;
  EXPECT_TRUE(outputs().empty()) << "left behind: " << outputs().front();
}

std::vector<int32_t> greedy(const std::string& model, const std::string& prompt, int n) {
  auto m = Model::load(model);
  EXPECT_TRUE(m.ok());
  if (!m.ok()) return {};
  auto s = Session::create(**m, SessionOptions{256, KvType::F16, 2});
  std::vector<int32_t> toks = (*m)->tokenizer().encode(prompt, true, false), out;
  auto logits = (*s)->eval(toks);
  for (int i = 0; i < n && logits.ok(); ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin());
    out.push_back(next);
    const int32_t one[1] = {next};
    logits = (*s)->eval(one);
  }
  return out;
}

TEST_F(QuantizeMethodsCli, AwqGptqFileRunsAlikeInLlamaCpp) {
  POCKETLM_REQUIRE_PEER();
  const std::string out = path("awq-gptq.gguf");
  const auto r = test::run_cli(quantize(test::stories_path().string(), out, "Q4_0", "awq+gptq"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto peer = test::run_peer({"greedy", "-m", out, "-p", "Once upon a time", "-n", "16"});
  const auto theirs = test::json_ids(peer.at("ids"));
  ASSERT_EQ(theirs.size(), 16u);
  EXPECT_EQ(greedy(out, "Once upon a time", 16), theirs) << "llama.cpp: " << peer.at("text").get<std::string>();
}

}  // namespace
}  // namespace pocketlm
