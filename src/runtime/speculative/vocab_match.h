#pragma once
// Whether a draft model's vocabulary lets it draft for a target: speculative decoding feeds the target's
// tokens to the draft and the draft's tokens to the target, so the ids must mean the same text. llama.cpp's
// rule (common/speculative.cpp), which pocketlm follows: the same tokenizer kind, the same BOS/EOS use and
// ids, sizes differing by at most 128 tokens, and the same text for every id from 5 up to the smaller size
// (ids below 5 are special tokens some conversions name differently). A draft whose vocabulary is shorter
// stops drafting when the target produces a token past its end.
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pocketlm {

inline constexpr int kDraftVocabMaxSizeDifference = 128;
inline constexpr int kDraftVocabCheckFrom = 5;

// `draft_name` / `target_name` (file paths) are used in the error, which names the first differing token.
Status check_draft_vocabulary(const Tokenizer& target, const Tokenizer& draft, const std::string& target_name,
                              const std::string& draft_name);

}  // namespace pocketlm
