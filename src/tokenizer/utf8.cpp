#include "tokenizer/utf8.h"

#include <array>

namespace pocketlm::utf8 {

size_t sequence_length(uint8_t lead) {
  static constexpr size_t kByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kByHighNibble[lead >> 4];
}

uint32_t decode(std::string_view s, size_t& offset) {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(s[offset + i]); };
  auto continuation = [&](size_t i) { return offset + i < s.size() && (byte(i) & 0xC0) == 0x80; };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) {
    offset += 1;
    return b0;
  }
  if ((b0 & 0xE0) == 0xC0 && continuation(1)) {
    const uint32_t cp = (uint32_t(b0 & 0x1F) << 6) | (byte(1) & 0x3F);
    offset += 2;
    return cp;
  }
  if ((b0 & 0xF0) == 0xE0 && continuation(1) && continuation(2)) {
    const uint32_t cp = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    offset += 3;
    return cp;
  }
  if ((b0 & 0xF8) == 0xF0 && continuation(1) && continuation(2) && continuation(3)) {
    const uint32_t cp = (uint32_t(b0 & 0x07) << 18) | (uint32_t(byte(1) & 0x3F) << 12) |
                        (uint32_t(byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
    offset += 4;
    return cp;
  }
  offset += 1;  // a stray continuation byte, a truncated sequence or 0xF8..0xFF
  return kReplacement;
}

std::vector<uint32_t> decode_all(std::string_view s) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t off = 0; off < s.size();) cps.push_back(decode(s, off));
  return cps;
}

void append(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF) cp = kReplacement;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode(uint32_t cp) {
  std::string s;
  append(s, cp);
  return s;
}

namespace {
// GPT-2's alphabet: printable Latin-1 bytes stand for themselves; the other 68 bytes map, in order, to
// U+0100, U+0101, ...
bool printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct ByteAlphabet {
  std::array<uint32_t, 256> cp{};
  std::array<std::string, 256> symbol;
  std::array<int16_t, 256 + 68> byte_of{};  // stand-in code point -> byte, -1 if none
  ByteAlphabet() {
    byte_of.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      cp[b] = printable(b) ? static_cast<uint32_t>(b) : next++;
      symbol[b] = encode(cp[b]);
      byte_of[cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}
}  // namespace

const std::string& byte_to_symbol(uint8_t byte) { return alphabet().symbol[byte]; }

int symbol_to_byte(uint32_t cp) {
  const auto& a = alphabet();
  return cp < a.byte_of.size() ? a.byte_of[cp] : -1;
}

}  // namespace pocketlm::utf8
