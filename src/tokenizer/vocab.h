#pragma once
// The token table shared by the SentencePiece and BPE encoders: texts, scores, attributes, and the
// text -> id map. Internal to src/tokenizer/.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pocketlm::tok {

// Token attributes (bit values as llama.cpp's llama_token_attr). GGUF stores a type per token
// (tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
};
uint32_t attr_from_token_type(int64_t type);

struct TokenData {
  std::string text;
  float score = 0.0f;
  uint32_t attr = kAttrNormal;
};

struct Vocab {
  std::vector<TokenData> tokens;
  // text -> id; when a text repeats, the last id wins (as in llama.cpp). Built by inserting ids in order
  // into a std::unordered_map, like llama.cpp, so that walking it visits texts in the same order (that order
  // decides which of several candidate texts becomes the EOT or FIM token).
  std::unordered_map<std::string, int32_t> ids;
  int32_t unk = -1;

  int32_t n() const { return static_cast<int32_t>(tokens.size()); }
  bool valid(int32_t id) const { return id >= 0 && id < n(); }
  int32_t find(const std::string& text) const {
    auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  }
  uint32_t attr(int32_t id) const { return tokens[static_cast<size_t>(id)].attr; }
};

}  // namespace pocketlm::tok
