#pragma once
// The doubly linked list of text pieces that both merge algorithms (SentencePiece and BPE) work on:
// one symbol per UTF-8 character to start with; merging folds a symbol into its left neighbour.
#include <algorithm>
#include <cstddef>
#include <string_view>
#include <vector>

#include "tokenizer/utf8.h"

namespace pocketlm {

struct Symbol {
  int prev;
  int next;
  size_t begin;  // byte offset into the text
  size_t len;    // 0 once merged into its left neighbour
};

// One symbol per UTF-8 character of `text` (a truncated trailing sequence is one symbol).
inline std::vector<Symbol> utf8_symbols(std::string_view text) {
  std::vector<Symbol> symbols;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8::sequence_length(static_cast<uint8_t>(text[off])), text.size() - off);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, off + len == text.size() ? -1 : index + 1, off, len});
    off += len;
  }
  return symbols;
}

// Folds `right` into its left neighbour `left` when the pair still spans `len` bytes; returns false for a
// stale pair (one side merged elsewhere since the pair was queued).
inline bool merge_symbols(std::vector<Symbol>& symbols, int left, int right, size_t len) {
  Symbol& l = symbols[static_cast<size_t>(left)];
  Symbol& r = symbols[static_cast<size_t>(right)];
  if (l.len == 0 || r.len == 0 || l.len + r.len != len) return false;
  l.len += r.len;
  r.len = 0;
  l.next = r.next;
  if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = left;
  return true;
}

}  // namespace pocketlm
