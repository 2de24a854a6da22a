#pragma once
// Special tokens in text. Before the model's tokenizer sees the text, it is cut at the occurrences of
// special tokens, like llama.cpp's tokenizer_st_partition: token by token, longest text first, every text
// fragment not yet claimed is split at each occurrence. User-defined tokens are always split out; control
// and unknown tokens only when parsing specials. A token marked lstrip/rstrip also swallows the ASCII
// whitespace before/after it.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace pocketlm::tok {

struct Fragment {
  int32_t token = -1;  // >= 0: a special token; otherwise the text [offset, offset + length)
  size_t offset = 0;
  size_t length = 0;
};

// Ids of control, user-defined and unknown tokens, longest text first (the order of the partition).
std::vector<int32_t> special_tokens_by_length(const Vocab& vocab);

std::vector<Fragment> partition_special(std::string_view text, const Vocab& vocab, const std::vector<int32_t>& specials,
                                        bool parse_special);

}  // namespace pocketlm::tok
