// llama.cpp's tokenizer test vectors (test-tokenizer-0): every string of NAME.gguf.inp must tokenize, without
// BOS and without parsing special tokens, to exactly the ids on the same line of NAME.gguf.out.
#include <gtest/gtest.h>

#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace pocketlm {
namespace {

std::string param_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string n = p.param;
  for (char& ch : n)
    if (ch == '-' || ch == '.') ch = '_';
  return n;
}

struct VectorsResult {
  size_t cases = 0;
  size_t failures = 0;
};

VectorsResult check_vectors(const std::filesystem::path& path) {
  VectorsResult r;
  auto file = GgufFile::open(path.string());
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message());
  if (!file.ok()) return r;
  auto tok = Tokenizer::from_gguf(*file);
  EXPECT_TRUE(tok.ok()) << (tok.ok() ? "" : tok.error().message());
  if (!tok.ok()) return r;
  const auto cases = test::read_vocab_cases(path);
  EXPECT_FALSE(cases.empty()) << "no test vectors beside " << path;
  for (const auto& c : cases) {
    ++r.cases;
    const auto got = (*tok)->encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    if (got != c.ids) {
      ++r.failures;
      ADD_FAILURE() << path.filename().string() << ": '" << c.text << "'\n  expected: " << test::ids_string(c.ids)
                    << "\n  got:      " << test::ids_string(got);
    }
  }
  return r;
}

class SharedVocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedVocabVectors, MatchLlamaCpp) {
  const auto path = test::shared_dir() / "testdata" / "vocab" / ("ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing";
  const auto r = check_vectors(path);
  EXPECT_GT(r.cases, 0u);
  EXPECT_EQ(r.failures, 0u) << r.failures << " of " << r.cases << " strings differ";
}

INSTANTIATE_TEST_SUITE_P(Vocab, SharedVocabVectors, ::testing::Values("llama-spm", "gpt-2", "starcoder"), param_name);

// The llama.cpp checkout (.peer/src/models) carries vectors for more pre-tokenizers.
class PeerVocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(PeerVocabVectors, MatchLlamaCpp) {
  const auto path = test::peer_dir() / "src" / "models" / ("ggml-vocab-" + GetParam() + ".gguf");
  if (!std::filesystem::exists(path) || !std::filesystem::exists(path.string() + ".out"))
    GTEST_SKIP() << path << " is absent (the llama.cpp peer checkout provides it)";
  const auto r = check_vectors(path);
  EXPECT_EQ(r.failures, 0u) << r.failures << " of " << r.cases << " strings differ";
}

INSTANTIATE_TEST_SUITE_P(Vocab, PeerVocabVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder", "llama-bpe", "qwen2",
                                           "deepseek-llm", "deepseek-coder", "falcon", "mpt", "refact", "command-r"),
                         param_name);

}  // namespace
}  // namespace pocketlm
