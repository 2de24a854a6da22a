#pragma once
// Text <-> token ids for a GGUF model, matching llama.cpp id for id. Two model kinds:
//   "llama" — SentencePiece (spm.h): score-ordered merges, U+2581 for spaces, <0xXX> byte fallback;
//   "gpt2"  — byte-level BPE (bpe.h) behind a regex pre-tokenizer named by tokenizer.ggml.pre
//             (pre_tokenizer.h).
// Special tokens (special_tokens.h) are cut out of the text first. Anything this file does not implement —
// another tokenizer.ggml.model, an unknown tokenizer.ggml.pre — is an error at load, never a quiet
// approximation. encode/decode are const and may run on several threads at once. See docs/tokenizer.md.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/reader.h"
#include "util/error.h"

namespace pocketlm {

class Tokenizer {
 public:
  // Reads the tokenizer.ggml.* metadata. Errors name the file and the key.
  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& f);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // llama.cpp semantics: add_special adds BOS when the model wants it (add_bos()) and EOS when
  // tokenizer.ggml.add_eos_token says so; parse_special turns the texts of control tokens (e.g.
  // "<|im_start|>") into their ids. User-defined tokens are always recognised.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes of one token (spm: U+2581 -> ' ', <0xXX> -> the byte; bpe: the GPT-2 byte alphabet decoded).
  // Control and unknown tokens render as "" unless render_special. Out-of-range ids render as "".
  std::string token_to_piece(int32_t id, bool render_special = false) const;
  // The pieces joined, as llama.cpp's detokenize (remove_special = false): the first token loses one
  // leading space when the model adds a space prefix, and vocabularies with clean_up_tokenization_spaces
  // drop the space before ?!., and in " 's", " 'm", " 're", " 've".
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const;
  int32_t bos() const;  // -1 if none
  int32_t eos() const;
  int32_t eot() const;
  bool is_eog(int32_t id) const;  // end of generation: EOS, EOT, EOM, <|im_end|>, <end_of_turn>, ...
  bool add_bos() const;           // tokenizer.ggml.add_bos_token, with llama.cpp's per-model defaults
  bool add_eos() const;
  bool is_control(int32_t id) const;
  std::string_view model_kind() const;              // "llama" (spm) | "gpt2" (bpe)
  std::string_view pre() const;                     // tokenizer.ggml.pre ("" when absent)
  const std::string& token_text(int32_t id) const;  // the raw vocabulary entry; "" for out-of-range ids

  struct Impl;  // tokenizer_impl.h

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pocketlm
