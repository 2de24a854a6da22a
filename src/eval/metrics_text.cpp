#include "eval/metrics_text.h"

#include <locale.h>
#include <wctype.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <mutex>

#include "tokenizer/utf8.h"

namespace pocketlm::text {

std::u32string decode(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) out.push_back(static_cast<char32_t>(utf8::decode(utf8, i)));
  return out;
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8::append(out, static_cast<uint32_t>(c));
  return out;
}

bool is_space(char32_t c) {
  if (c <= 0x7F) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

// \p{L} and \p{N} from PCRE2's Unicode tables (the same Unicode version as Python 3.11's unicodedata).
struct AlnumClass {
  pcre2_code* code = nullptr;
  pcre2_match_data* md = nullptr;
  std::mutex mu;
  AlnumClass() {
    int err = 0;
    PCRE2_SIZE off = 0;
    static const char kPattern[] = "^[\\p{L}\\p{N}]$";
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                         &off, nullptr);
    if (code) md = pcre2_match_data_create_from_pattern(code, nullptr);
  }
  ~AlnumClass() {
    if (md) pcre2_match_data_free(md);
    if (code) pcre2_code_free(code);
  }
  bool match(char32_t c) {
    if (!code || !md || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    const std::string s = utf8::encode(static_cast<uint32_t>(c));
    std::lock_guard<std::mutex> lock(mu);
    return pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md, nullptr) >= 0;
  }
};

locale_t utf8_locale() {
  static locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    return l;
  }();
  return loc;
}

bool is_cased_letter(char32_t c) {
  locale_t loc = utf8_locale();
  if (!loc) return c < 0x80 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  const auto w = static_cast<wint_t>(c);
  return towlower_l(w, loc) != w || towupper_l(w, loc) != w;
}

bool is_case_ignorable(char32_t c) {
  // The marks and modifiers Python skips around a final sigma (Mn, Me, Cf, Lm, Sk and a few punctuation
  // marks); the common ones: combining diacritics, apostrophes, the middle dot.
  return (c >= 0x0300 && c <= 0x036F) || c == 0x27 || c == 0x2E || c == 0x3A || c == 0xB7 || c == 0x2019 || c == 0xAD ||
         c == 0x200B || c == 0x200C || c == 0x200D;
}

}  // namespace

bool is_alnum(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  static AlnumClass cls;
  return cls.match(c);
}

std::vector<std::u32string> split(std::u32string_view s) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) break;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::u32string strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::u32string(s.substr(b, e - b));
}

std::u32string rstrip(std::u32string_view s) {
  size_t e = s.size();
  while (e > 0 && is_space(s[e - 1])) --e;
  return std::u32string(s.substr(0, e));
}

std::u32string lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  locale_t loc = utf8_locale();
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {  // İ: the full lowercase mapping is two code points
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (c == 0x3A3) {  // Σ: final sigma when a cased letter precedes and none follows
      size_t j = i;
      bool before = false;
      while (j > 0) {
        --j;
        if (is_case_ignorable(s[j])) continue;
        before = is_cased_letter(s[j]);
        break;
      }
      bool after = false;
      for (size_t k = i + 1; k < s.size(); ++k) {
        if (is_case_ignorable(s[k])) continue;
        after = is_cased_letter(s[k]);
        break;
      }
      out.push_back(before && !after ? 0x3C2 : 0x3C3);
    } else if (loc) {
      out.push_back(static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), loc)));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string replace_all(std::u32string_view s, std::u32string_view from, std::u32string_view to) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s.size() - i >= from.size() && s.compare(i, from.size(), from) == 0) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

}  // namespace pocketlm::text
