#pragma once
// SentencePiece-style encoding (tokenizer.ggml.model = "llama"), as llama.cpp does it: the text (spaces
// already escaped to U+2581) starts as one symbol per UTF-8 character; the adjacent pair whose merged text
// is the highest-scoring token is merged, repeatedly; a symbol that is not a token falls back to byte tokens
// <0xXX> (or the unknown token when the vocabulary has no byte tokens).
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace pocketlm::tok {

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

// The token for one byte: "<0xXX>", else the byte itself as a token text; -1 if neither exists.
int32_t spm_byte_token(const Vocab& vocab, uint8_t byte);

}  // namespace pocketlm::tok
