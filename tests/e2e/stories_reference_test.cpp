// stories260K: pocketlm reproduces llama.cpp's reference token ids and greedy continuations exactly
// (../shared/testdata/reference/stories260K-greedy.jsonl), through the CLI a user runs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "e2e/cli_runner.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

std::vector<nlohmann::json> references() {
  std::ifstream in(test::shared_dir() / "testdata" / "reference" / "stories260K-greedy.jsonl");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(StoriesReference, PromptIdsMatchLlamaCpp) {
  const auto refs = references();
  ASSERT_GE(refs.size(), 4u);
  for (const auto& ref : refs) {
    auto r = test::run_cli(
        {"tokenize", "-m", test::stories_path().string(), "--ids", "-p", ref["prompt"].get<std::string>()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::istringstream ss(r.out);
    std::vector<int> ids;
    for (int id; ss >> id;) ids.push_back(id);
    EXPECT_EQ(ids, ref["prompt_ids_with_bos"].get<std::vector<int>>()) << ref["prompt"];
  }
}

TEST(StoriesReference, GreedyContinuationsMatchLlamaCpp) {
  for (const auto& ref : references()) {
    for (const char* kv : {"f16", "f32"}) {
      auto r = test::run_cli({"run", "-m", test::stories_path().string(), "-p", ref["prompt"].get<std::string>(), "-n",
                              std::to_string(ref["n_predict"].get<int>()), "--temp", "0", "--no-display-prompt", "-c",
                              "512", "-ctk", kv, "-ctv", kv, "-t", "2"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, ref["greedy_continuation"].get<std::string>() + "\n")
          << "prompt: " << ref["prompt"] << " kv " << kv;
      EXPECT_NE(r.err.find("peak RSS"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("t/s"), std::string::npos) << r.err;
    }
  }
}

TEST(Cli, PromptLongerThanContextIsAClearError) {
  auto r = test::run_cli({"run", "-m", test::stories_path().string(), "-p",
                          std::string(2000, 'a') + " once upon a time", "-c", "64", "-n", "4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not fit the context of 64 tokens"), std::string::npos) << r.err;
}

TEST(Cli, BadFlagsAreClearErrors) {
  auto r = test::run_cli({"run", "-m", test::stories_path().string(), "--bogus"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("--bogus"), std::string::npos);
  r = test::run_cli({"run", "-m", "/nonexistent.gguf", "-p", "x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("/nonexistent.gguf"), std::string::npos);
  r = test::run_cli({"run", "-m", test::stories_path().string(), "-p", "x", "-c", "0"});
  EXPECT_NE(r.exit_code, 0);
  r = test::run_cli({"run", "-m", test::stories_path().string(), "-p", "x", "-ctk", "q9"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("q9"), std::string::npos);
}

TEST(Cli, HelpForEverySubcommand) {
  for (const char* sub : {"run", "chat", "tokenize", "inspect"}) {
    auto r = test::run_cli({sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << sub << ": " << r.out;
    EXPECT_NE(r.out.find(std::string(sub) == "inspect" ? "--no-tensors" : "--model"), std::string::npos)
        << sub << ": " << r.out;
  }
}

TEST(Cli, InspectPrintsTensorTableAndBitsPerWeight) {
  auto r = test::run_cli({"inspect", test::stories_path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| token_embd.weight | f32 | [64, 512] | 131072 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("32.000 bits per weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| general.architecture | string | \"llama\" |"), std::string::npos) << r.out;
}

TEST(Cli, TokenizePiecesFormat) {
  auto r = test::run_cli({"tokenize", "-m", test::stories_path().string(), "-p", "Once upon a time"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 2), "1\t");
  EXPECT_NE(r.out.find("403\t"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pocketlm
