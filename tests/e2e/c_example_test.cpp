// examples/chat.c, the C app over the public C API, streams a greedy chat turn from SmolLM2: its stdout
// equals `pocketlm run --temp 0` on the same prompt rendered through the model's chat template, and it
// prints its stats line.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "e2e/process_runner.h"
#include "gguf/reader.h"
#include "test_paths.h"
#include "tokenizer/chat_template.h"

namespace pocketlm {
namespace {

TEST(CExample, ChatTurnEqualsRunAtTempZero) {
  if (!std::filesystem::exists(test::smollm2_path())) GTEST_SKIP() << "SmolLM2 absent: run scripts/fetch-models.sh";
  const std::string model = test::smollm2_path().string();
  const std::string message = "Name three colours of the rainbow.";
  const test::CliResult ex = test::run_process({test::chat_example_path().string(), model, message, "32"});
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.err.find("generation: "), std::string::npos) << ex.err;
  EXPECT_NE(ex.err.find("peak RSS: "), std::string::npos) << ex.err;

  auto gguf = GgufFile::open(model);
  ASSERT_TRUE(gguf.ok());
  auto tmpl = gguf->get_string("tokenizer.chat_template");
  ASSERT_TRUE(tmpl.ok());
  auto prompt = render_prompt(*tmpl, PromptTurn{.user = message});
  ASSERT_TRUE(prompt.ok()) << prompt.error().message();
  const test::CliResult run = test::run_cli(
      {"run", "-m", model, "-p", *prompt, "-n", "32", "-c", "2048", "--temp", "0", "--no-display-prompt"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_GT(ex.out.size(), 2u);
  EXPECT_EQ(ex.out, run.out);
}

}  // namespace
}  // namespace pocketlm
