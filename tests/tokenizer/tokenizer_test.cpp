// Tokenizer behaviour beyond the test vectors: round trips, byte fallback, special tokens, BOS/EOS, the
// clean-up of decoded text, errors, and a real model (SmolLM2). Expected ids that are not derivable by hand
// were obtained from llama.cpp (the .peer build, libllama v0.5.0: llama_tokenize / llama_detokenize with the
// same flags) and are hard-coded here.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace pocketlm {
namespace {

using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> load_vocab(const std::string& name) {
  const auto path = test::shared_dir() / "testdata" / "vocab" / ("ggml-vocab-" + name + ".gguf");
  auto file = GgufFile::open(path.string());
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message());
  if (!file.ok()) return nullptr;
  auto tok = Tokenizer::from_gguf(*file);
  EXPECT_TRUE(tok.ok()) << (tok.ok() ? "" : tok.error().message());
  return tok.ok() ? std::move(tok).value() : nullptr;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

TEST(Tokenizer, Properties) {
  auto spm = load_vocab("llama-spm");
  ASSERT_TRUE(spm);
  EXPECT_EQ(spm->model_kind(), "llama");
  EXPECT_EQ(spm->n_vocab(), 32000);
  EXPECT_EQ(spm->bos(), 1);
  EXPECT_EQ(spm->eos(), 2);
  EXPECT_TRUE(spm->add_bos());
  EXPECT_TRUE(spm->is_eog(2));
  EXPECT_FALSE(spm->is_eog(1));
  EXPECT_EQ(spm->token_text(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(spm->token_text(-1), "");
  EXPECT_EQ(spm->token_text(32000), "");

  auto gpt2 = load_vocab("gpt-2");
  ASSERT_TRUE(gpt2);
  EXPECT_EQ(gpt2->model_kind(), "gpt2");
  EXPECT_EQ(gpt2->pre(), "gpt-2");
  EXPECT_EQ(gpt2->bos(), 50256);
  EXPECT_EQ(gpt2->eos(), 50256);
  EXPECT_EQ(gpt2->eot(), 50256);  // recognised by its text, <|endoftext|>
  EXPECT_FALSE(gpt2->add_bos());
  EXPECT_TRUE(gpt2->is_eog(50256));

  auto star = load_vocab("starcoder");
  ASSERT_TRUE(star);
  EXPECT_EQ(star->pre(), "starcoder");
  EXPECT_EQ(star->eot(), 0);
  EXPECT_TRUE(star->is_eog(0));
}

// SentencePiece: the space prefix is removed again by decode, so every string comes back exactly.
TEST(Tokenizer, SpmRoundTrip) {
  auto tok = load_vocab("llama-spm");
  ASSERT_TRUE(tok);
  const auto path = test::shared_dir() / "testdata" / "vocab" / "ggml-vocab-llama-spm.gguf";
  const auto cases = test::read_vocab_cases(path);
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const Ids ids = tok->encode(c.text, false, false);
    EXPECT_EQ(tok->decode(ids), c.text) << "ids " << test::ids_string(ids);
    // With BOS first, llama.cpp keeps the space the model added (BOS took the "first token" place).
    Ids with_bos = tok->encode(c.text, true, false);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], 1);
    if (!c.text.empty()) {
      EXPECT_EQ(tok->decode(with_bos), " " + c.text);
    }
  }
}

// Byte-level BPE: the pieces of the tokens are the bytes of the text, for every vector string.
TEST(Tokenizer, BpeRoundTrip) {
  for (const char* name : {"gpt-2", "starcoder"}) {
    auto tok = load_vocab(name);
    ASSERT_TRUE(tok);
    const auto path = test::shared_dir() / "testdata" / "vocab" / (std::string("ggml-vocab-") + name + ".gguf");
    for (const auto& c : test::read_vocab_cases(path)) {
      ASSERT_TRUE(valid_utf8(c.text));
      const Ids ids = tok->encode(c.text, false, false);
      std::string joined;
      for (int32_t id : ids) joined += tok->token_to_piece(id);
      EXPECT_EQ(joined, c.text) << name << " ids " << test::ids_string(ids);
    }
    // Every ASCII byte, control characters included, comes back.
    std::string ascii;
    for (int b = 1; b < 128; ++b) ascii.push_back(static_cast<char>(b));
    std::string joined;
    for (int32_t id : tok->encode(ascii, false, false)) joined += tok->token_to_piece(id);
    EXPECT_EQ(joined, ascii) << name;
  }
}

TEST(Tokenizer, InvalidUtf8BecomesReplacementCharacterInBpe) {
  auto tok = load_vocab("gpt-2");
  ASSERT_TRUE(tok);
  // As llama.cpp: an invalid byte is read as U+FFFD before the byte-level encoding.
  EXPECT_EQ(tok->encode("a\xFF"
                        "b",
                        false, false),
            tok->encode("a\xEF\xBF\xBD"
                        "b",
                        false, false));
  EXPECT_EQ(tok->decode(tok->encode("\xC3", false, false)), "\xEF\xBF\xBD");
}

TEST(Tokenizer, SpmByteFallback) {
  auto tok = load_vocab("llama-spm");
  ASSERT_TRUE(tok);
  // U+1F999 is no token: "▁" then its four bytes as <0xF0> <0x9F> <0xA6> <0x99> (ids byte + 3).
  const Ids ids = tok->encode("\xF0\x9F\xA6\x99", false, false);
  EXPECT_EQ(ids, (Ids{29871, 243, 162, 169, 156}));
  EXPECT_EQ(tok->token_text(243), "<0xF0>");
  EXPECT_EQ(tok->token_to_piece(243), "\xF0");
  EXPECT_EQ(tok->token_to_piece(156), "\x99");
  EXPECT_EQ(tok->decode(ids), "\xF0\x9F\xA6\x99");
  // Invalid UTF-8 also goes through bytes and comes back unchanged.
  EXPECT_EQ(tok->decode(tok->encode("a\xFF\xC3z", false, false)), "a\xFF\xC3z");
}

TEST(Tokenizer, SpmSpecialTokensAndSpacePrefix) {
  auto tok = load_vocab("llama-spm");
  ASSERT_TRUE(tok);
  // BOS, then "<s>" parsed, "▁Hello", "</s>" parsed, and " world" gets a space prefix after a special token.
  EXPECT_EQ(tok->encode("<s>Hello</s> world", true, true), (Ids{1, 1, 15043, 2, 29871, 3186}));
  EXPECT_EQ(tok->encode("<s>Hello</s> world", false, false), (Ids{529, 29879, 29958, 10994, 829, 29879, 29958, 3186}));
  EXPECT_EQ(tok->encode("", true, false), (Ids{1}));
  EXPECT_EQ(tok->encode("", false, false), (Ids{}));
  EXPECT_EQ(tok->encode(" ", false, false), (Ids{259}));
  EXPECT_EQ(tok->encode("a\nb", false, false), (Ids{263, 13, 29890}));
  // Decoding (llama.cpp's llama_detokenize, remove_special = false).
  EXPECT_EQ(tok->decode(Ids{1, 15043, 2}), " Hello");
  EXPECT_EQ(tok->decode(Ids{1, 15043, 2}, true), "<s> Hello</s>");
  EXPECT_EQ(tok->decode(Ids{15043}), "Hello");
  EXPECT_EQ(tok->decode(Ids{1, 29871, 15043}), "  Hello");
  EXPECT_EQ(tok->token_to_piece(1), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_to_piece(-5), "");
}

TEST(Tokenizer, BpeSpecialTokens) {
  auto gpt2 = load_vocab("gpt-2");
  ASSERT_TRUE(gpt2);
  EXPECT_EQ(gpt2->encode("<|endoftext|>Hi", false, true), (Ids{50256, 17250}));
  EXPECT_EQ(gpt2->encode("<|endoftext|>Hi", false, false), (Ids{27, 91, 437, 1659, 5239, 91, 29, 17250}));
  EXPECT_EQ(gpt2->encode("Hi", true, true), (Ids{17250}));  // GPT-2 adds no BOS
  EXPECT_EQ(gpt2->decode(Ids{50256, 17250}), "Hi");
  EXPECT_EQ(gpt2->decode(Ids{50256, 17250}, true), "<|endoftext|>Hi");

  auto star = load_vocab("starcoder");
  ASSERT_TRUE(star);
  EXPECT_EQ(star->encode("<|endoftext|>Hi", false, true), (Ids{0, 12589}));
  // Longest match first: "<fim_prefix>" is one token, not "<fim_" + ...
  const Ids fim = star->encode("<fim_prefix>def f():<fim_suffix>", false, true);
  ASSERT_GE(fim.size(), 2u);
  EXPECT_EQ(star->token_text(fim.front()), "<fim_prefix>");
  EXPECT_EQ(star->token_text(fim.back()), "<fim_suffix>");
}

// clean_up_tokenization_spaces, as llama.cpp applies it when decoding GPT-2 text.
TEST(Tokenizer, BpeDecodeCleansSpaces) {
  auto tok = load_vocab("gpt-2");
  ASSERT_TRUE(tok);
  const std::string text = "Hello , world ! It 's a ' quote ' , isn 't it ? I 'm sure we 're ok .";
  const Ids ids = tok->encode(text, false, false);
  EXPECT_EQ(ids, (Ids{15496, 837, 995, 5145, 632, 705, 82, 257,  705, 9577, 705, 837,   2125,
                      705,   83,  340, 5633, 314, 705, 76, 1654, 356, 705,  260, 12876, 764}));
  EXPECT_EQ(tok->decode(ids), "Hello, world! It's a'quote ', isn 't it? I'm sure we're ok.");
}

Expected<std::unique_ptr<Tokenizer>> tiny_bpe(const std::string& pre, const std::string& model = "gpt2") {
  test::Metadata kv = {
      {"general.architecture", GgufValue::of_string("llama")},
      {"tokenizer.ggml.model", GgufValue::of_string(model)},
      {"tokenizer.ggml.pre", GgufValue::of_string(pre)},
      {"tokenizer.ggml.tokens", GgufValue::of_strings({"a", "b", "c", "ab", "bc", "abc", "\xC4\xA0", "<|end|>"})},
      {"tokenizer.ggml.token_type", GgufValue::of_i32s({1, 1, 1, 1, 1, 1, 1, 3})},
      {"tokenizer.ggml.merges", GgufValue::of_strings({"b c", "a b", "a bc"})},
  };
  return test::tokenizer_from_metadata(kv, "tiny-" + pre + ".gguf");
}

TEST(Tokenizer, BpeMergesByRank) {
  auto tok = tiny_bpe("gpt-2");
  ASSERT_TRUE(tok.ok()) << tok.error().message();
  // "b c" has the best rank, then "a bc": abc -> a|bc -> abc.
  EXPECT_EQ((*tok)->encode("abc", false, false), (Ids{5}));
  EXPECT_EQ((*tok)->encode("ab", false, false), (Ids{3}));
  EXPECT_EQ((*tok)->encode("abab", false, false), (Ids{3, 3}));
  EXPECT_EQ((*tok)->encode("a b", false, false), (Ids{0, 6, 1}));  // " b" has no merge: Ġ, b
  EXPECT_EQ((*tok)->encode("ab<|end|>", false, true), (Ids{3, 7}));
  EXPECT_TRUE((*tok)->is_eog(7));  // "<|end|>" is an end-of-generation text
  EXPECT_EQ((*tok)->bos(), -1);    // the GPT-2 default (11) is out of range
  EXPECT_EQ((*tok)->eot(), 7);
}

TEST(Tokenizer, UnknownPreTokenizerIsAnError) {
  auto tok = tiny_bpe("my-new-pre");
  ASSERT_FALSE(tok.ok());
  const std::string& msg = tok.error().message();
  EXPECT_NE(msg.find("tiny-my-new-pre.gguf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer.ggml.pre"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'my-new-pre'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("smollm"), std::string::npos) << msg;  // lists what is supported
}

TEST(Tokenizer, UnknownModelIsAnError) {
  auto tok = tiny_bpe("default", "t5");
  ASSERT_FALSE(tok.ok());
  const std::string& msg = tok.error().message();
  EXPECT_NE(msg.find("tiny-default.gguf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer.ggml.model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'t5'"), std::string::npos) << msg;
}

TEST(Tokenizer, MissingKeysAreErrors) {
  test::Metadata kv = {{"tokenizer.ggml.model", GgufValue::of_string("llama")}};
  auto tok = test::tokenizer_from_metadata(kv, "no-tokens.gguf");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.error().message().find("no-tokens.gguf"), std::string::npos) << tok.error().message();
  EXPECT_NE(tok.error().message().find("tokenizer.ggml.tokens"), std::string::npos) << tok.error().message();

  kv = {{"tokenizer.ggml.model", GgufValue::of_string("gpt2")},
        {"tokenizer.ggml.pre", GgufValue::of_string("gpt-2")},
        {"tokenizer.ggml.tokens", GgufValue::of_strings({"a"})}};
  tok = test::tokenizer_from_metadata(kv, "no-merges.gguf");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.error().message().find("tokenizer.ggml.merges"), std::string::npos) << tok.error().message();

  kv = {{"tokenizer.ggml.model", GgufValue::of_string("llama")},
        {"tokenizer.ggml.tokens", GgufValue::of_strings({"a", "b"})},
        {"tokenizer.ggml.scores", GgufValue::of_f32s({0.0f})}};
  tok = test::tokenizer_from_metadata(kv, "short-scores.gguf");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.error().message().find("tokenizer.ggml.scores"), std::string::npos) << tok.error().message();
}

// A small SentencePiece vocabulary: merges follow scores, user-defined tokens are always split out, and a
// character with neither a token nor byte tokens becomes <unk>.
TEST(Tokenizer, TinySpm) {
  test::Metadata kv = {
      {"tokenizer.ggml.model", GgufValue::of_string("llama")},
      {"tokenizer.ggml.tokens", GgufValue::of_strings({"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b",
                                                       "\xE2\x96\x81"
                                                       "a",
                                                       "ab",
                                                       "\xE2\x96\x81"
                                                       "ab",
                                                       "[X]"})},
      {"tokenizer.ggml.scores", GgufValue::of_f32s({0, 0, 0, -1, -2, -2, -3, -1, -5, 0})},
      {"tokenizer.ggml.token_type", GgufValue::of_i32s({2, 3, 3, 1, 1, 1, 1, 1, 1, 4})},
  };
  auto tok = test::tokenizer_from_metadata(kv, "tiny-spm.gguf");
  ASSERT_TRUE(tok.ok()) << tok.error().message();
  const Tokenizer& t = **tok;
  // "▁ab": "ab" (-1) beats "▁a" (-3); then "▁"+"ab" -> "▁ab".
  EXPECT_EQ(t.encode("ab", false, false), (Ids{8}));
  EXPECT_EQ(t.encode("ab", true, false), (Ids{1, 8}));
  // User-defined "[X]" is split out even without parse_special; as after any special token, the text that
  // follows gets a space prefix again.
  EXPECT_EQ(t.encode("ab[X]ab", false, false), (Ids{8, 9, 8}));
  // "c" has no token and there are no byte tokens: <unk>.
  EXPECT_EQ(t.encode("ac", false, false), (Ids{6, 0}));
  EXPECT_EQ(t.decode(Ids{8, 9, 8}), "ab[X] ab");
  EXPECT_EQ(t.decode(Ids{0}), "");
  EXPECT_EQ(t.decode(Ids{0}, true), "<unk>");
}

// stories260K (a 512-token SentencePiece vocabulary): the prompt ids of shared/testdata/reference.
TEST(Tokenizer, Stories260KReferencePrompts) {
  const auto model = test::stories_path();
  const auto ref = test::shared_dir() / "testdata" / "reference" / "stories260K-greedy.jsonl";
  if (!std::filesystem::exists(model) || !std::filesystem::exists(ref))
    GTEST_SKIP() << model << " or " << ref << " is absent (shared/ provides them)";
  auto file = GgufFile::open(model.string());
  ASSERT_TRUE(file.ok()) << file.error().message();
  auto tok = Tokenizer::from_gguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.error().message();
  std::ifstream in(ref);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string prompt = j.at("prompt");
    const Ids expected = j.at("prompt_ids_with_bos").get<Ids>();
    EXPECT_EQ((*tok)->encode(prompt, true, false), expected) << prompt;
    const Ids without_bos(expected.begin() + 1, expected.end());
    EXPECT_EQ((*tok)->decode(without_bos), prompt);
    const std::string cont = j.at("greedy_continuation");
    EXPECT_EQ((*tok)->decode((*tok)->encode(cont, false, false)), cont);
    ++n;
  }
  EXPECT_EQ(n, 4);
}

// SmolLM2-135M-Instruct: pre-tokenizer "smollm", chat tokens <|im_start|> (1) and <|im_end|> (2).
TEST(Tokenizer, SmolLM2) {
  const auto path = test::smollm2_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent; run scripts/fetch-models.sh";
  auto file = GgufFile::open(path.string());
  ASSERT_TRUE(file.ok()) << file.error().message();
  auto tok = Tokenizer::from_gguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.error().message();
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.model_kind(), "gpt2");
  EXPECT_EQ(t.pre(), "smollm");
  EXPECT_EQ(t.n_vocab(), 49152);
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_EQ(t.eot(), 0);
  EXPECT_FALSE(t.add_bos());
  EXPECT_TRUE(t.is_eog(0));  // <|endoftext|>
  EXPECT_TRUE(t.is_eog(2));  // <|im_end|>
  EXPECT_TRUE(t.is_eog(4));  // <reponame>: llama.cpp takes it for the FIM repo token, which ends generation
  EXPECT_FALSE(t.is_eog(1));

  // Expected ids from llama.cpp (llama_tokenize, add_special = false, parse_special = true).
  EXPECT_EQ(t.encode("<|im_start|>user\nHello<|im_end|>", false, true), (Ids{1, 4093, 198, 19556, 2}));
  EXPECT_EQ(t.encode("<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"
                     "What is 2+2?<|im_end|>\n<|im_start|>assistant\n",
                     false, true),
            (Ids{1,    9690, 198, 2683, 359, 253, 5356, 11173, 2,   198, 1,   4093, 198,
                 1780, 314,  216, 34,   27,  34,  47,   2,     198, 1,   520, 9531, 198}));
  EXPECT_EQ(t.encode("Hello world", true, true), (Ids{19556, 905}));  // no BOS for SmolLM2
  EXPECT_EQ(t.encode("Don't stop\n\n  believing! 3.14159", false, true),
            (Ids{8084, 982, 2853, 8866, 16517, 17, 216, 35, 30, 33, 36, 33, 37, 41}));
  const std::string konnichiwa = "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\xE4\xB8\x96\xE7\x95\x8C";
  EXPECT_EQ(t.encode(konnichiwa, false, true),
            (Ids{7365, 237, 10391, 237, 41152, 7365, 111, 7365, 124, 7906, 240, 178, 239, 230}));
  // Without parse_special the chat markers are plain text.
  EXPECT_EQ(t.encode("<|im_start|>user\nHello<|im_end|>", false, false),
            (Ids{44, 108, 306, 79, 3738, 108, 46, 4093, 198, 19556, 44, 108, 306, 79, 486, 108, 46}));
  const Ids ids = t.encode("<|im_start|>user\nHello<|im_end|>", false, true);
  EXPECT_EQ(t.decode(ids), "user\nHello");
  EXPECT_EQ(t.decode(ids, true), "<|im_start|>user\nHello<|im_end|>");
}

}  // namespace
}  // namespace pocketlm
