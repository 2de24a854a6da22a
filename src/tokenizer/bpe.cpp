#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "tokenizer/symbols.h"
#include "tokenizer/utf8.h"

namespace pocketlm::tok {

void BpeRanks::add(const std::string& merge, int rank) {
  // The pair splits at the first space after the first byte; an entry without one can never match.
  if (merge.find(' ', 1) == std::string::npos) return;
  ranks_.emplace(merge, rank);
}

int BpeRanks::rank(const std::string& left, const std::string& right) const {
  std::string key;
  key.reserve(left.size() + 1 + right.size());
  key.append(left).push_back(' ');
  key.append(right);
  auto it = ranks_.find(key);
  return it == ranks_.end() ? -1 : it->second;
}

namespace {

struct Candidate {
  int left;
  int right;
  int rank;
  size_t len;
};

// Lowest rank first; on a tie, the leftmost pair.
struct After {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

void encode_word(const Vocab& vocab, const BpeRanks& ranks, bool ignore_merges, const std::string& word,
                 std::vector<int32_t>& out) {
  if (ignore_merges) {
    const int32_t id = vocab.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols = utf8_symbols(word);

  std::priority_queue<Candidate, std::vector<Candidate>, After> queue;
  std::string left_text, right_text;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    left_text.assign(word, l.begin, l.len);
    right_text.assign(word, r.begin, r.len);
    const int rank = ranks.rank(left_text, right_text);
    if (rank >= 0) queue.push({left, right, rank, l.len + r.len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) consider(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    if (!merge_symbols(symbols, c.left, c.right, c.len)) continue;
    const Symbol& l = symbols[static_cast<size_t>(c.left)];
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  std::string piece;
  for (const Symbol& s : symbols) {
    if (s.len == 0) continue;
    piece.assign(word, s.begin, s.len);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char ch : piece) {  // a byte the vocabulary lacks is dropped, as in llama.cpp
      const int32_t byte_id = vocab.find(std::string(1, ch));
      if (byte_id >= 0) out.push_back(byte_id);
    }
  }
}

}  // namespace

void bpe_encode(const Vocab& vocab, const BpeRanks& ranks, const PreTokenizer& pre, std::string_view text,
                std::vector<int32_t>& out) {
  const bool ignore_merges = pre.traits().ignore_merges;
  for (const std::string& word : pre.split(text)) encode_word(vocab, ranks, ignore_merges, word, out);
}

}  // namespace pocketlm::tok
