// `pocketlm eval` end to end: stories260K on 3 examples of each shared task (its outputs are nonsense; the
// machinery runs), resume after a simulated kill, bad task lines, `eval compare`; SmolLM2 on a couple of
// examples when present (slow with today's kernels: about a minute per example on a loaded 2-core machine).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "e2e/cli_runner.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

std::string tasks_arg() {
  const fs::path d = test::shared_dir() / "testdata/tasks";
  std::string s;
  for (const char* f : {"summarize.dev.jsonl", "translate-en-fr.dev.jsonl", "commit-message.dev.jsonl"})
    s += (s.empty() ? "" : ",") + (d / f).string();
  return s;
}

struct Line {
  std::string output;
  nlohmann::json scores;
};
// key -> (output, scores); fails the test on a duplicate key.
std::map<std::string, Line> read_lines(const std::string& path, nlohmann::json* header = nullptr) {
  std::ifstream in(path);
  std::string line;
  std::map<std::string, Line> out;
  bool first = true;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (first) {
      if (header) *header = j;
      first = false;
      continue;
    }
    const std::string key = j.at("key");
    EXPECT_FALSE(out.count(key)) << "duplicate " << key;
    out[key] = {j.at("output"), j.at("scores")};
  }
  return out;
}

class EvalStories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
    if (!fs::exists(test::shared_dir() / "testdata/tasks/summarize.dev.jsonl"))
      GTEST_SKIP() << "shared task files missing";
    dir_ = fs::temp_directory_path() / ("pocketlm_evalcli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(EvalStories, RunsThreeExamplesPerTaskAndResumesAfterAKill) {
  const std::string out = (dir_ / "r.jsonl").string();
  auto r = test::run_cli(
      {"eval", "-m", test::stories_path().string(), "--tasks", tasks_arg(), "--limit", "3", "-o", out, "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json header;
  const auto first = read_lines(out, &header);
  ASSERT_EQ(first.size(), 9u) << r.err;
  EXPECT_EQ(header.at("pocketlm_eval"), 1);
  EXPECT_EQ(header.at("file_size"), fs::file_size(test::stories_path()));
  EXPECT_NEAR(header.at("bits_per_weight").get<double>(), 32.0, 1e-9);  // F32
  EXPECT_EQ(header.at("tokenizer_hash").get<std::string>().size(), 16u);
  for (const auto& [key, l] : first) {
    if (key.rfind("summarize/", 0) == 0) {
      EXPECT_TRUE(l.scores.contains("rougeL") && l.scores.contains("rouge2")) << key;
    } else if (key.rfind("translate.en-fr/", 0) == 0) {
      EXPECT_TRUE(l.scores.contains("chrf") && l.scores.contains("bleu")) << key;
    } else {
      EXPECT_TRUE(l.scores.contains("nngen_bleu")) << key;
    }
  }
  EXPECT_NE(r.out.find("| summarize | 3 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| translate.en-fr | 3 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("t/s"), std::string::npos) << r.out;

  // Simulated kill: cut the file in the middle of its 6th line, rerun: the same final results, no duplicates.
  std::string text;
  {
    std::ifstream in(out, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  size_t pos = 0;
  for (int i = 0; i < 5; ++i) pos = text.find('\n', pos) + 1;
  const size_t cut = pos + (text.find('\n', pos) - pos) / 2;
  fs::resize_file(out, cut);
  auto again = test::run_cli(
      {"eval", "-m", test::stories_path().string(), "--tasks", tasks_arg(), "--limit", "3", "-o", out, "-t", "1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("torn"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("5 to run"), std::string::npos) << again.err;  // 4 complete examples kept
  const auto second = read_lines(out);
  ASSERT_EQ(second.size(), first.size());
  for (const auto& [key, l] : first) {
    ASSERT_TRUE(second.count(key)) << key;
    EXPECT_EQ(second.at(key).output, l.output) << key;
    EXPECT_EQ(second.at(key).scores, l.scores) << key;
  }
  // A third run has nothing left to do.
  auto done =
      test::run_cli({"eval", "-m", test::stories_path().string(), "--tasks", tasks_arg(), "--limit", "3", "-o", out});
  ASSERT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(done.err.find("0 to run"), std::string::npos) << done.err;
}

TEST_F(EvalStories, BadTaskLinesAreReportedAndTheRunGoesOn) {
  const std::string tasks = (dir_ / "t.jsonl").string();
  std::ofstream(tasks)
      << R"({"id":"1","task":"commit_message","input":"fix typo","references":["Fix typo"]})"
      << "\n"
      << R"({"id":"2","task":"commit_message","input":"x", "references":[)"
      << "\n"
      << R"({"id":"3","task":"commit_message","references":["r"]})"
      << "\n"
      << R"({"id":"4","task":"commit_message","input":"y","references":[]})"
      << "\n"
      << R"({"id":"5","task":"translate","source_lang":"en","target_lang":"fr","input":"Hello","references":["Bonjour"]})"
      << "\n";
  const std::string out = (dir_ / "r.jsonl").string();
  auto r =
      test::run_cli({"eval", "-m", test::stories_path().string(), "--tasks", tasks, "-o", out, "--max-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(tasks + ":2: malformed JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(tasks + ":3: missing field \"input\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(tasks + ":4: empty reference list"), std::string::npos) << r.err;
  EXPECT_EQ(read_lines(out).size(), 2u);
}

TEST_F(EvalStories, CompareWritesMarkdownJsonAndSvg) {
  // Two "variants": the same model with two generation limits (their outputs differ).
  const std::string a = (dir_ / "a.jsonl").string(), b = (dir_ / "b.jsonl").string();
  for (const auto& [out, n] : {std::pair{a, "24"}, std::pair{b, "6"}}) {
    auto r = test::run_cli({"eval", "-m", test::stories_path().string(), "--tasks", tasks_arg(), "--limit", "2", "-o",
                            out, "--max-tokens", n});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string md = (dir_ / "rep.md").string(), js = (dir_ / "rep.json").string(),
                    svg = (dir_ / "rep.svg").string();
  auto c = test::run_cli({"eval", "compare", a, b, "--labels", "long,short", "--kld", "0,0.5", "--bits-per-weight",
                          "32,16", "-o", md, "--json", js, "--svg", svg});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("| summarize | 2 | rougeL (primary) |"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("long vs short"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("**overall**"), std::string::npos) << c.out;
  ASSERT_TRUE(fs::exists(md) && fs::exists(js) && fs::exists(svg));
  std::ifstream jin(js);
  const auto j = nlohmann::json::parse(jin);
  EXPECT_EQ(j.at("variants").size(), 2u);
  EXPECT_EQ(j.at("proxy"), "KLD");
  // Bad input to compare: a missing file, a count mismatch.
  auto bad = test::run_cli({"eval", "compare", a, b, "--labels", "one"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--labels"), std::string::npos) << bad.err;
  // --line: "long" on the line, "short" a single point; an unknown label names the flag.
  auto line = test::run_cli({"eval", "compare", a, b, "--labels", "long,short", "--line", "long", "--svg", svg});
  ASSERT_EQ(line.exit_code, 0) << line.err;
  std::ifstream sin(svg);
  const std::string plot((std::istreambuf_iterator<char>(sin)), std::istreambuf_iterator<char>());
  EXPECT_NE(plot.find("summarize rougeL (single files)"), std::string::npos) << plot;
  auto bad_line = test::run_cli({"eval", "compare", a, b, "--labels", "long,short", "--line", "medium"});
  EXPECT_NE(bad_line.exit_code, 0);
  EXPECT_NE(bad_line.err.find("--line"), std::string::npos) << bad_line.err;
  EXPECT_NE(bad_line.err.find("\"medium\" is not the label of any variant"), std::string::npos) << bad_line.err;
}

TEST(EvalSmolLM2, TwoExamplesPerTask) {
  if (!fs::exists(test::smollm2_path()))
    GTEST_SKIP() << test::smollm2_path() << " missing: run scripts/fetch-models.sh";
  if (std::getenv("POCKETLM_SANITIZED")) GTEST_SKIP() << "slow under AddressSanitizer";
  const fs::path d = test::shared_dir() / "testdata/tasks";
  const fs::path out = fs::temp_directory_path() / ("pocketlm_evalsmol_" + std::to_string(::getpid()) + ".jsonl");
  fs::remove(out);
  auto r = test::run_cli({"eval", "-m", test::smollm2_path().string(), "--tasks",
                          (d / "translate-en-fr.dev.jsonl").string() + "," + (d / "commit-message.dev.jsonl").string(),
                          "--limit", "2", "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json header;
  const auto lines = read_lines(out.string(), &header);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(header.at("chat_template"), "chatml");
  EXPECT_EQ(header.at("file_type"), "Q4_1");
  EXPECT_NEAR(header.at("bits_per_weight").get<double>(), 5.74, 0.01);
  for (const auto& [key, l] : lines) {
    EXPECT_FALSE(l.output.empty()) << key;
    EXPECT_EQ(l.output.find("<|im_"), std::string::npos)
        << key << ": " << l.output;  // end of turn stops, is not printed
  }
  fs::remove(out);
}

}  // namespace
}  // namespace pocketlm
