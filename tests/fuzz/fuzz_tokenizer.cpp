// libFuzzer target: arbitrary bytes as text through the tokenizer, with and without special-token parsing,
// then back through decode. The vocabulary (StarCoder's, byte-level BPE) is loaded once, from
// $POCKETLM_FUZZ_VOCAB or shared/testdata/vocab/ggml-vocab-starcoder.gguf.
// Checks: no crash or sanitizer report; every id is in range; and for well-formed UTF-8 without special
// parsing, the pieces of the tokens are exactly the input bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"

#ifndef POCKETLM_SHARED_DIR
#define POCKETLM_SHARED_DIR "../shared"
#endif

namespace {

const pocketlm::Tokenizer& tokenizer() {
  static const std::unique_ptr<pocketlm::Tokenizer> tok = [] {
    const char* env = std::getenv("POCKETLM_FUZZ_VOCAB");
    const std::string path = (env && *env)
                                 ? std::string(env)
                                 : std::string(POCKETLM_SHARED_DIR) + "/testdata/vocab/ggml-vocab-starcoder.gguf";
    auto file = pocketlm::GgufFile::open(path);
    if (!file.ok()) {
      std::fprintf(stderr, "fuzz_tokenizer: %s (set POCKETLM_FUZZ_VOCAB)\n", file.error().message().c_str());
      std::abort();
    }
    auto t = pocketlm::Tokenizer::from_gguf(*file);
    if (!t.ok()) {
      std::fprintf(stderr, "fuzz_tokenizer: %s\n", t.error().message().c_str());
      std::abort();
    }
    return std::move(t).value();
  }();
  return *tok;
}

bool printable_ascii(std::string_view s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7E) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const pocketlm::Tokenizer& tok = tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool parse_special : {false, true}) {
    const auto ids = tok.encode(text, /*add_special=*/true, parse_special);
    std::string joined;
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.n_vocab()) std::abort();
      joined += tok.token_to_piece(id, /*render_special=*/true);
    }
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
    // Byte-level BPE must give back printable ASCII exactly. (Not any UTF-8: for code points its Unicode
    // tables lack, llama.cpp — and so pocketlm — maps bytes lossily, e.g. U+430C3 -> three 0x83 tokens.)
    if (!parse_special && !tok.add_bos() && printable_ascii(text) && joined != text) std::abort();
  }
  return 0;
}
