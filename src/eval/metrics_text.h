#pragma once
// Text handling the reference metric packages rely on, reproduced code point for code point: Python's
// str.split() / str.strip() (Unicode whitespace as str.isspace), str.lower() (full Unicode lowercase,
// final sigma included), and str.isalnum() (the \w of Python's re). The metrics (ROUGE, chrF, BLEU) work on
// code points as Python does, never on bytes.
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm::text {

std::u32string decode(std::string_view utf8);  // lenient: an invalid byte becomes U+FFFD
std::string encode(std::u32string_view s);

bool is_space(char32_t c);  // Python str.isspace()
bool is_alnum(char32_t c);  // Python str.isalnum() (Unicode letters and numbers)

std::vector<std::u32string> split(std::u32string_view s);  // str.split() with no argument
std::u32string strip(std::u32string_view s);               // str.strip()
std::u32string rstrip(std::u32string_view s);              // str.rstrip()
std::u32string lower(std::u32string_view s);               // str.lower()

// Replaces every occurrence of `from` (non-empty) by `to`, left to right, as str.replace.
std::u32string replace_all(std::u32string_view s, std::u32string_view from, std::u32string_view to);

}  // namespace pocketlm::text
