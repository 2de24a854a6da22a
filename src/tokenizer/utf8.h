#pragma once
// UTF-8 helpers with llama.cpp's leniency, so that token ids match it byte for byte on any input:
// a lead byte announces a length that is trusted when the continuation bytes are there (overlong forms and
// surrogates decode as they are); anything else is one invalid byte that decodes to U+FFFD.
// Also the GPT-2 byte-level alphabet (every byte as one printable code point).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm::utf8 {

inline constexpr uint32_t kReplacement = 0xFFFD;

// Length of the sequence a lead byte announces (1 for ASCII and for stray continuation bytes).
size_t sequence_length(uint8_t lead);

// Decodes one code point at `offset` and advances it (always by at least one byte).
uint32_t decode(std::string_view s, size_t& offset);
std::vector<uint32_t> decode_all(std::string_view s);

// Appends the UTF-8 form of `cp`; values above U+10FFFF become U+FFFD.
void append(std::string& out, uint32_t cp);
std::string encode(uint32_t cp);

// GPT-2 byte-level alphabet: byte -> UTF-8 of its printable stand-in, and back (-1 if not a stand-in).
const std::string& byte_to_symbol(uint8_t byte);
int symbol_to_byte(uint32_t cp);

}  // namespace pocketlm::utf8
