// The C API (include/pocketlm/pocketlm.h) on bad input: each misuse returns its status and a message that
// names the problem, never a crash (also run under ASan/UBSan: the `unit` label). Loading from a descriptor,
// at an aligned offset, gives the same model as from the path; an offset that would misalign the tensors is
// refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "pocketlm/pocketlm.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

namespace fs = std::filesystem;

class CApi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(test::stories_path())) GTEST_SKIP() << test::stories_path() << " missing (shared/ data folder)";
  }
  // A context over stories260K; both handles freed by TearDown.
  void open(int32_t n_ctx = 256) {
    ASSERT_EQ(plm_model_load(test::stories_path().c_str(), &model_), PLM_OK) << plm_last_error();
    plm_context_params cp = plm_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    ASSERT_EQ(plm_context_create(model_, &cp, &ctx_), PLM_OK) << plm_last_error();
  }
  void TearDown() override {
    plm_context_free(ctx_);
    plm_model_free(model_);
  }
  static std::string greedy(plm_context* ctx, const char* prompt, int32_t n) {
    plm_generate_params gp = plm_generate_default_params();
    gp.temperature = 0;
    gp.max_tokens = n;
    std::string out;
    const plm_status st = plm_generate(
        ctx, prompt, &gp,
        [](const char* t, size_t len, void* u) {
          static_cast<std::string*>(u)->append(t, len);
          return 0;
        },
        &out, nullptr);
    EXPECT_EQ(st, PLM_OK) << plm_last_error();
    return out;
  }
  plm_model* model_ = nullptr;
  plm_context* ctx_ = nullptr;
};

TEST_F(CApi, MissingFileIsAnIoErrorNamingIt) {
  plm_model* m = reinterpret_cast<plm_model*>(this);  // must be reset to NULL
  EXPECT_EQ(plm_model_load("/nonexistent/dir/model.gguf", &m), PLM_ERR_IO);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(plm_last_error()).find("/nonexistent/dir/model.gguf: cannot open"), std::string::npos)
      << plm_last_error();
  EXPECT_STREQ(plm_status_name(PLM_ERR_IO), "i/o error");
}

TEST_F(CApi, NonGgufFileIsAFormatErrorNamingIt) {
  const fs::path p = fs::temp_directory_path() / ("plm_c_api_not_gguf_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(p) << "this is a text file, not a GGUF model\n";
  plm_model* m = nullptr;
  EXPECT_EQ(plm_model_load(p.c_str(), &m), PLM_ERR_FORMAT);
  EXPECT_EQ(m, nullptr);
  const std::string msg = plm_last_error();
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  fs::remove(p);
}

TEST_F(CApi, NullHandlesAndPointersAreInvalidArguments) {
  plm_model* m = nullptr;
  EXPECT_EQ(plm_model_load(nullptr, &m), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("path is NULL"), std::string::npos) << plm_last_error();
  EXPECT_EQ(plm_model_load(test::stories_path().c_str(), nullptr), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(plm_model_load_fd(-1, 0, 0, &m), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("fd -1"), std::string::npos) << plm_last_error();
  plm_context* c = nullptr;
  EXPECT_EQ(plm_context_create(nullptr, nullptr, &c), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("model is NULL"), std::string::npos) << plm_last_error();
  EXPECT_EQ(plm_generate(nullptr, "x", nullptr, nullptr, nullptr, nullptr), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("ctx is NULL"), std::string::npos) << plm_last_error();
  open();
  EXPECT_EQ(plm_generate(ctx_, nullptr, nullptr, nullptr, nullptr, nullptr), PLM_ERR_INVALID_ARGUMENT);
  plm_generate_params gp = plm_generate_default_params();
  gp.n_stop = 2;  // stop left NULL
  EXPECT_EQ(plm_generate(ctx_, "x", &gp, nullptr, nullptr, nullptr), PLM_ERR_INVALID_ARGUMENT);
  plm_context_params cp = plm_context_default_params();
  cp.n_ctx = -5;
  EXPECT_EQ(plm_context_create(model_, &cp, &c), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);
  plm_context_free(nullptr);
  plm_model_free(nullptr);
}

TEST_F(CApi, PromptLongerThanTheContextIsContextFull) {
  open(/*n_ctx=*/16);
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "Once upon a time ";
  plm_stats stats{};
  EXPECT_EQ(plm_generate(ctx_, prompt.c_str(), nullptr, nullptr, nullptr, &stats), PLM_ERR_CONTEXT_FULL);
  EXPECT_NE(std::string(plm_last_error()).find("does not fit the context of 16 tokens"), std::string::npos)
      << plm_last_error();
  // The context is still usable afterwards.
  EXPECT_FALSE(greedy(ctx_, "Once", 4).empty());
}

TEST_F(CApi, CancelFromTheCallbackStopsWithCancelled) {
  open();
  struct Seen {
    int calls = 0;
    std::string text;
  } seen;
  plm_generate_params gp = plm_generate_default_params();
  gp.temperature = 0;
  gp.max_tokens = 50;
  plm_stats stats{};
  const plm_status st = plm_generate(
      ctx_, "Once upon a time", &gp,
      [](const char* t, size_t len, void* u) {
        auto* s = static_cast<Seen*>(u);
        s->text.append(t, len);
        return ++s->calls == 3 ? 1 : 0;
      },
      &seen, &stats);
  EXPECT_EQ(st, PLM_ERR_CANCELLED);
  EXPECT_NE(std::string(plm_last_error()).find("cancelled by the token callback"), std::string::npos);
  EXPECT_EQ(seen.calls, 3);
  EXPECT_EQ(stats.generated_tokens, 3);
  EXPECT_STREQ(stats.stop_reason, "callback");
  // What was streamed is the start of the uncancelled greedy text.
  const std::string full = greedy(ctx_, "Once upon a time", 50);
  EXPECT_EQ(full.substr(0, seen.text.size()), seen.text);
}

TEST_F(CApi, LoadFromADescriptorAtAnOffsetGivesTheSameModel) {
  open();
  const std::string expected = greedy(ctx_, "Once upon a time", 24);
  // The GGUF inside a bigger file, past a prefix that is not a whole page (as in an APK).
  const fs::path p = fs::temp_directory_path() / ("plm_c_api_fd_" + std::to_string(::getpid()) + ".bin");
  const uint64_t prefix = 4096 + 96;
  const auto size = static_cast<uint64_t>(fs::file_size(test::stories_path()));
  {
    std::ofstream out(p, std::ios::binary);
    out << std::string(prefix, 'x');
    std::ifstream in(test::stories_path(), std::ios::binary);
    out << in.rdbuf();
    out << "trailing bytes of the next asset";
  }
  const int fd = ::open(p.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  plm_model* m = nullptr;
  ASSERT_EQ(plm_model_load_fd(fd, prefix, size, &m), PLM_OK) << plm_last_error();
  ::close(fd);  // the mapping outlives the descriptor
  plm_context* c = nullptr;
  plm_context_params cp = plm_context_default_params();
  cp.n_ctx = 256;
  cp.n_threads = 1;
  ASSERT_EQ(plm_context_create(m, &cp, &c), PLM_OK) << plm_last_error();
  EXPECT_EQ(greedy(c, "Once upon a time", 24), expected);
  plm_context_free(c);
  plm_model_free(m);
  // A range past the end of the file is refused, and so is an offset that would misalign the tensors.
  const int fd2 = ::open(p.c_str(), O_RDONLY);
  EXPECT_EQ(plm_model_load_fd(fd2, prefix + 4, size, &m), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("offset 4196 is not a multiple of 32"), std::string::npos)
      << plm_last_error();
  EXPECT_EQ(plm_model_load_fd(fd2, prefix, size + 1000, &m), PLM_ERR_IO);
  EXPECT_NE(std::string(plm_last_error()).find("past the end of the file"), std::string::npos) << plm_last_error();
  ::close(fd2);
  fs::remove(p);
}

}  // namespace
}  // namespace pocketlm

namespace pocketlm {
namespace {

// Speculative decoding through the C API: the same greedy text as a plain context, the draft's figures, and
// bad draft parameters as invalid arguments naming the problem.
TEST_F(CApi, SpeculativeContextGivesThePlainTextAndItsDraftStats) {
  open();
  const std::string plain = greedy(ctx_, "Once upon a time", 40);
  plm_context* spec = nullptr;
  plm_context_params cp = plm_context_default_params();
  cp.n_ctx = 256;
  cp.n_threads = 1;
  for (int source = 0; source < 2; ++source) {
    plm_draft_params dp = plm_draft_default_params();
    EXPECT_EQ(dp.draft_max, 16);
    if (source == 0)
      dp.self_type = "q4_0";
    else
      dp.lookup = 1;
    ASSERT_EQ(plm_context_create_speculative(model_, &cp, &dp, &spec), PLM_OK) << plm_last_error();
    EXPECT_EQ(greedy(spec, "Once upon a time", 40), plain) << "source " << source;
    plm_draft_stats ds{};
    ASSERT_EQ(plm_context_draft_stats(spec, &ds), PLM_OK);
    EXPECT_GT(ds.rounds, 0);
    EXPECT_LE(ds.accepted, ds.drafted);
    plm_context_free(spec);
    spec = nullptr;
  }
  plm_draft_stats none{};
  ASSERT_EQ(plm_context_draft_stats(ctx_, &none), PLM_OK);
  EXPECT_EQ(none.rounds, 0);

  plm_draft_params bad = plm_draft_default_params();
  bad.self_type = "q4_0";
  bad.draft_max = 0;
  EXPECT_EQ(plm_context_create_speculative(model_, &cp, &bad, &spec), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("at least 1"), std::string::npos) << plm_last_error();
  EXPECT_EQ(spec, nullptr);
  bad = plm_draft_default_params();
  EXPECT_EQ(plm_context_create_speculative(model_, &cp, &bad, &spec), PLM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(plm_last_error()).find("no draft source"), std::string::npos) << plm_last_error();
  bad.draft_model = "/no/such/draft.gguf";
  EXPECT_EQ(plm_context_create_speculative(model_, &cp, &bad, &spec), PLM_ERR_IO);
  EXPECT_NE(std::string(plm_last_error()).find("/no/such/draft.gguf"), std::string::npos) << plm_last_error();
  EXPECT_EQ(plm_context_create_speculative(model_, &cp, nullptr, &spec), PLM_ERR_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace pocketlm
