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
    const std::string path = (env && *env) ? std::string(env)
                                           : std::string(POCKETLM_SHARED_DIR) +
                                                 "/testdata/vocab/ggml-vocab-starcoder.gguf";
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

// Strict UTF-8: shortest forms only, no surrogates, nothing above U+10FFFF.
bool well_formed_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (b0 < 0x80) {
      n = 1, cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      n = 2, cp = b0 & 0x1Fu;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 3, cp = b0 & 0x0Fu;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 4, cp = b0 & 0x07u;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
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
    if (!parse_special && !tok.add_bos() && well_formed_utf8(text) && joined != text) std::abort();
  }
  return 0;
}
