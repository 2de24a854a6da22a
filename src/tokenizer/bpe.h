#pragma once
// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp does it: the pre-tokenizer splits the text
// into words in the GPT-2 byte alphabet; within a word, the adjacent pair with the lowest merge rank is
// merged, repeatedly (leftmost first on a tie); each final symbol becomes its token, or its single-byte
// tokens when the vocabulary lacks it.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocab.h"

namespace pocketlm::tok {

class BpeRanks {
 public:
  // `merge` is one entry of tokenizer.ggml.merges, "left right"; an entry that repeats keeps its first rank.
  void add(const std::string& merge, int rank);
  int rank(const std::string& left, const std::string& right) const;  // -1 when the pair never merges
  size_t size() const { return ranks_.size(); }

 private:
  std::unordered_map<std::string, int> ranks_;  // keyed by "left right"
};

void bpe_encode(const Vocab& vocab, const BpeRanks& ranks, const PreTokenizer& pre, std::string_view text,
                std::vector<int32_t>& out);

}  // namespace pocketlm::tok
