// Speculative decoding through the CLI: `run` with a self-draft and with lookup prints the same text as plain
// decoding and the draft line on stderr; bad flags are clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "e2e/cli_runner.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

class SpeculativeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing";
  }
  test::CliResult run(std::vector<std::string> extra) const {
    std::vector<std::string> args = {
        "run", "-m", test::stories_path().string(), "-p", "Once upon a time", "-n", "48", "--temp", "0", "-t", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  }
};

TEST_F(SpeculativeCli, RunPrintsTheDraftLineAndThePlainText) {
  const auto plain = run({});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("draft:"), std::string::npos);
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--draft-self", "q4_0"}, std::vector<std::string>{"--lookup", "--draft-max", "4"},
        std::vector<std::string>{"--draft-self", "q8_0", "--draft-layers", "2"}}) {
    const auto r = run(flags);
    ASSERT_EQ(r.exit_code, 0) << flags[0] << ": " << r.err;
    EXPECT_EQ(r.out, plain.out) << flags[0];
    const std::regex line(R"(draft: accepted (\d+)/(\d+) \(([0-9.]+) %\), mean accepted length ([0-9.]+))");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, line)) << r.err;
    EXPECT_LE(std::stol(m[1]), std::stol(m[2]));
  }
}

TEST_F(SpeculativeCli, BadFlagsAreClearErrors) {
  auto r = run({"--draft-self", "q4_0", "--draft-max", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--draft-max"), std::string::npos) << r.err;
  r = run({"--draft-self", "q9_9"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--draft-self q9_9: not a GGUF type"), std::string::npos) << r.err;
  r = run({"--draft-self", "q4_0", "--lookup"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
  r = run({"--draft-layers", "2"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("requires"), std::string::npos) << r.err;
  r = run({"--draft-self", "q4_0", "--draft-min", "8", "--draft-max", "4"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--draft-min 8 is above --draft-max 4"), std::string::npos) << r.err;
  r = run({"--draft-self", "q4_0", "--kv-budget", "20K"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("too small for the target"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pocketlm
