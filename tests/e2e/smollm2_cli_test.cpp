// SmolLM2-135M-Instruct through the CLI a user runs: chat template, streaming, memory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "e2e/cli_runner.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

class SmolLM2Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(test::smollm2_path()))
      GTEST_SKIP() << test::smollm2_path() << " missing: run scripts/fetch-models.sh";
  }
  std::string model() const { return test::smollm2_path().string(); }
};

double mib_after(const std::string& text, const std::string& label) {
  std::smatch m;
  const std::regex re(label + ": ([0-9.]+) (KiB|MiB|GiB)");
  if (!std::regex_search(text, m, re)) return -1;
  const double v = std::stod(m[1]);
  return m[2] == "KiB" ? v / 1024 : m[2] == "GiB" ? v * 1024 : v;
}

TEST_F(SmolLM2Cli, ChatOneTurnAnswersThroughTheTemplate) {
  auto r = test::run_cli({"chat", "-m", model(), "-p", "What is the capital of France? Answer in one word.", "--temp",
                          "0", "-n", "16", "-c", "512"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("<|im_end|>"), std::string::npos) << "end-of-turn must stop generation, not be printed";
}

TEST_F(SmolLM2Cli, UnknownChatTemplateNameIsAClearError) {
  auto r = test::run_cli({"chat", "-m", model(), "-p", "hi", "--chat-template", "klingon", "-n", "4"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("klingon"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--chat-template"), std::string::npos) << r.err;
}

// Weights are not held twice: the matrices the kernel path reads in the x16 layout are copied at load and
// their mapped pages released (on AVX-512 that is all of SmolLM2 Q4_1), the rest stay mapped. So RSS after
// loading stays near one file (not two), and the peak below file + KV + a margin for activations.
TEST_F(SmolLM2Cli, WeightsAreNotCopied) {
  if (std::getenv("POCKETLM_SANITIZED"))
    GTEST_SKIP() << "AddressSanitizer's shadow memory skews RSS; the release job measures it";
  auto r = test::run_cli({"run", "-m", model(), "-p", "Hello", "-n", "4", "--temp", "0", "-c", "2048"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double file_mib = static_cast<double>(std::filesystem::file_size(test::smollm2_path())) / (1024.0 * 1024.0);
  const double kv = mib_after(r.err, "KV cache"), loaded = mib_after(r.err, "RSS after load"),
               peak = mib_after(r.err, "peak RSS");
  ASSERT_GT(kv, 0) << r.err;
  ASSERT_GT(peak, 0) << r.err;
  // Paged KV: only the blocks the 5 positions use are taken, one 32-token block per layer:
  // 30 layers × 32 tokens × 2 × 3 kv heads × 64 × 2 bytes = 0.70 MiB (all of -c 2048 would be 45 MiB).
  EXPECT_NEAR(kv, 0.703125, 0.01);
  EXPECT_LT(loaded, kv + file_mib + 48.0) << r.err;
  EXPECT_LT(peak, file_mib + kv + 64.0) << r.err;
}

}  // namespace
}  // namespace pocketlm
