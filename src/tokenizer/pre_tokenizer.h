#pragma once
// Pre-tokenizers of byte-level BPE vocabularies: the regex splits named by `tokenizer.ggml.pre`. Each name
// maps to the list of regexes llama.cpp applies in turn (every regex splits the pieces the previous one left,
// and text a regex does not match stays a piece of its own). Matching uses PCRE2 with Unicode properties
// (PCRE2_UTF | PCRE2_UCP), so \p{L}, \p{N}, \p{P} come from PCRE2's Unicode tables. Whitespace follows
// Unicode White_Space, as llama.cpp's does (e.g. U+0085 and U+3000 are whitespace, U+001C is not).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace pocketlm {

// What a pre-tokenizer name also implies in llama.cpp besides its regexes.
struct PreTokenizerTraits {
  bool ignore_merges = false;  // a word that is itself a token is emitted whole, before any merge
  bool clean_spaces = true;    // decode() drops spaces before ?!., and in " 's" etc. (clean_up_tokenization_spaces)
  bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
  bool no_bos = false;         // the vocabulary has no BOS token (chatglm)
};

class PreTokenizer {
 public:
  // The pre-tokenizer llama.cpp uses for `name` (tokenizer.ggml.pre; empty means "default", as in
  // llama.cpp), or an error naming it.
  static Expected<PreTokenizer> create(std::string_view name);
  static std::vector<std::string> supported_names();

  // Splits `text` into words in the GPT-2 byte alphabet, ready for BPE merges. Invalid UTF-8 decodes to
  // U+FFFD first, as in llama.cpp.
  std::vector<std::string> split(std::string_view text) const;

  std::string_view name() const { return name_; }
  const PreTokenizerTraits& traits() const { return traits_; }

  struct Compiled;  // PCRE2 code objects, shared between copies

 private:
  std::string name_;
  PreTokenizerTraits traits_;
  std::shared_ptr<const Compiled> regexes_;
};

}  // namespace pocketlm
