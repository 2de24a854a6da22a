#include "tokenizer/special_tokens.h"

#include <algorithm>

namespace pocketlm::tok {
namespace {
bool ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
}  // namespace

std::vector<int32_t> special_tokens_by_length(const Vocab& vocab) {
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < vocab.n(); ++id)
    if (vocab.attr(id) & (kAttrControl | kAttrUserDefined | kAttrUnknown)) ids.push_back(id);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return vocab.tokens[static_cast<size_t>(a)].text.size() > vocab.tokens[static_cast<size_t>(b)].text.size();
  });
  return ids;
}

std::vector<Fragment> partition_special(std::string_view text, const Vocab& vocab, const std::vector<int32_t>& specials,
                                        bool parse_special) {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : specials) {
    const TokenData& tok = vocab.tokens[static_cast<size_t>(id)];
    if (!parse_special && (tok.attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string_view needle = tok.text;
    next.clear();
    bool found = false;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.length;
      while (pos < end) {
        const size_t match = text.substr(0, end).find(needle, pos);
        if (match == std::string_view::npos) break;
        found = true;
        size_t left_len = match - pos;
        if (tok.attr & kAttrLstrip)
          while (left_len > 0 && ascii_space(text[pos + left_len - 1])) --left_len;
        if (left_len > 0) next.push_back({-1, pos, left_len});
        next.push_back({id, 0, 0});
        pos = match + needle.size();
        if ((tok.attr & kAttrRstrip) && pos < end)
          while (pos < end && ascii_space(text[pos])) ++pos;
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    if (found) fragments.swap(next);
  }
  return fragments;
}

}  // namespace pocketlm::tok
