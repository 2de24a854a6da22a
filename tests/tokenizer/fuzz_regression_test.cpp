// Inputs found by fuzz_tokenizer, pinned with llama.cpp's answer (.peer/build/bin/llama-tokenize --ids).
#include <gtest/gtest.h>

#include "gguf/reader.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"

namespace pocketlm {
namespace {

// U+430C3 is unassigned in llama.cpp's Unicode tables (and PCRE2's); llama.cpp encodes its 4 bytes as three
// 0x83 byte tokens (the lead byte is lost). pocketlm matches it rather than inventing a different answer.
TEST(TokenizerFuzzRegression, UnassignedPlane4CodePointMatchesLlamaCpp) {
  auto f = GgufFile::open((test::shared_dir() / "testdata" / "vocab" / "ggml-vocab-starcoder.gguf").string());
  ASSERT_TRUE(f.ok()) << f.error().message();
  auto tok = Tokenizer::from_gguf(*f);
  ASSERT_TRUE(tok.ok()) << tok.error().message();
  EXPECT_EQ((*tok)->encode("\xf1\x83\x83\x83", false, false), (std::vector<int32_t>{249, 249, 249}));
  EXPECT_EQ((*tok)->encode("a\xf1\x83\x83\x83"
                           "b",
                           false, false),
            (std::vector<int32_t>{102, 249, 249, 249, 103}));
}

}  // namespace
}  // namespace pocketlm
