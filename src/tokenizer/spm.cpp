#include "tokenizer/spm.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <string>

#include "tokenizer/symbols.h"
#include "tokenizer/utf8.h"

namespace pocketlm::tok {
namespace {

struct Candidate {
  int left;
  int right;
  float score;
  size_t len;  // bytes of the merged text, to recognise a stale candidate
};

// Highest score first; on a tie, the leftmost pair.
struct Lower {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

int32_t spm_byte_token(const Vocab& vocab, uint8_t byte) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "<0x%02X>", static_cast<unsigned>(byte));
  const int32_t id = vocab.find(hex);
  return id >= 0 ? id : vocab.find(std::string(1, static_cast<char>(byte)));
}

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::vector<Symbol> symbols = utf8_symbols(text);

  std::priority_queue<Candidate, std::vector<Candidate>, Lower> queue;
  std::string pair;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    pair.assign(text.substr(l.begin, l.len + r.len));
    const int32_t id = vocab.find(pair);
    if (id < 0) return;
    queue.push({left, right, vocab.tokens[static_cast<size_t>(id)].score, pair.size()});
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
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    piece.assign(text.substr(s.begin, s.len));
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Byte fallback; a character the vocabulary cannot spell even in bytes becomes one unknown token.
    const size_t mark = out.size();
    for (char ch : piece) {
      const int32_t byte_id = spm_byte_token(vocab, static_cast<uint8_t>(ch));
      if (byte_id < 0) {
        out.resize(mark);
        if (vocab.unk >= 0) out.push_back(vocab.unk);
        break;
      }
      out.push_back(byte_id);
    }
  }
}

}  // namespace pocketlm::tok
