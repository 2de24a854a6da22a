#include "eval/metrics_bleu.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>

#include "eval/metrics_text.h"

namespace pocketlm {
namespace {

using Words = std::vector<std::u32string>;
using NgramCounts = std::map<std::vector<std::u32string>, int64_t>;

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_dot_comma(char32_t c) { return c == U'.' || c == U','; }

// The four substitutions of mteval's tokenizer, each as Python's re.sub applies it: leftmost matches,
// non-overlapping, left to right.
std::u32string mteval_regexes(std::u32string s) {
  // 1. ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
  std::u32string a;
  a.reserve(s.size() * 2);
  for (char32_t c : s) {
    const bool punct = (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
                       (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == 0x2F;
    if (punct) {
      a.push_back(U' ');
      a.push_back(c);
      a.push_back(U' ');
    } else {
      a.push_back(c);
    }
  }
  // Two-character patterns: pred(first, second) -> first + sep + second + tail.
  auto pass = [](const std::u32string& in, auto match, std::u32string_view mid, std::u32string_view tail,
                 std::u32string_view head) {
    std::u32string out;
    out.reserve(in.size() * 2);
    size_t i = 0;
    while (i < in.size()) {
      if (i + 1 < in.size() && match(in[i], in[i + 1])) {
        out.append(head);
        out.push_back(in[i]);
        out.append(mid);
        out.push_back(in[i + 1]);
        out.append(tail);
        i += 2;
      } else {
        out.push_back(in[i++]);
      }
    }
    return out;
  };
  // 2. ([^0-9])([\.,]) -> "\1 \2 "
  std::u32string b = pass(
      a, [](char32_t x, char32_t y) { return !is_digit(x) && is_dot_comma(y); }, U" ", U" ", U"");
  // 3. ([\.,])([^0-9]) -> " \1 \2"
  std::u32string c = pass(
      b, [](char32_t x, char32_t y) { return is_dot_comma(x) && !is_digit(y); }, U" ", U"", U" ");
  // 4. ([0-9])(-) -> "\1 \2 "
  return pass(
      c, [](char32_t x, char32_t y) { return is_digit(x) && y == U'-'; }, U" ", U" ", U"");
}

std::u32string join_words(const Words& w) {
  std::u32string out;
  for (size_t i = 0; i < w.size(); ++i) {
    if (i) out.push_back(U' ');
    out += w[i];
  }
  return out;
}

std::u32string tokenize_13a_u32(std::u32string line) {
  line = text::replace_all(line, U"<skipped>", U"");
  line = text::replace_all(line, U"-\n", U"");
  line = text::replace_all(line, U"\n", U" ");
  if (line.find(U'&') != std::u32string::npos) {
    line = text::replace_all(line, U"&quot;", U"\"");
    line = text::replace_all(line, U"&amp;", U"&");
    line = text::replace_all(line, U"&lt;", U"<");
    line = text::replace_all(line, U"&gt;", U">");
  }
  return join_words(text::split(mteval_regexes(U" " + line + U" ")));
}

NgramCounts count_ngrams(const Words& w, int max_n) {
  NgramCounts c;
  for (int n = 1; n <= max_n; ++n)
    for (size_t i = 0; i + static_cast<size_t>(n) <= w.size(); ++i)
      ++c[Words(w.begin() + static_cast<std::ptrdiff_t>(i), w.begin() + static_cast<std::ptrdiff_t>(i) + n)];
  return c;
}

double my_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

}  // namespace

std::string tokenize_13a(std::string_view line) { return text::encode(tokenize_13a_u32(text::decode(line))); }

BleuStats bleu_stats(std::string_view hypothesis, const std::vector<std::string>& references) {
  NgramCounts ref_max;
  std::vector<int64_t> ref_lens;
  for (const auto& r : references) {
    const Words w = text::split(tokenize_13a_u32(text::rstrip(text::decode(r))));
    ref_lens.push_back(static_cast<int64_t>(w.size()));
    for (const auto& [g, c] : count_ngrams(w, kBleuOrder)) {
      int64_t& m = ref_max[g];
      m = std::max(m, c);
    }
  }
  const Words h = text::split(tokenize_13a_u32(text::rstrip(text::decode(hypothesis))));
  BleuStats s;
  s.sys_len = static_cast<int64_t>(h.size());
  int64_t closest_diff = -1;
  s.ref_len = -1;
  for (int64_t rl : ref_lens) {
    const int64_t diff = std::abs(s.sys_len - rl);
    if (closest_diff == -1 || diff < closest_diff) {
      closest_diff = diff;
      s.ref_len = rl;
    } else if (diff == closest_diff && rl < s.ref_len) {
      s.ref_len = rl;
    }
  }
  for (const auto& [g, c] : count_ngrams(h, kBleuOrder)) {
    const size_t n = g.size() - 1;
    s.total[n] += c;
    auto it = ref_max.find(g);
    if (it != ref_max.end()) s.correct[n] += std::min(c, it->second);
  }
  return s;
}

double bleu_from_stats(const BleuStats& s, bool effective_order) {
  double bp = 1.0;
  if (s.sys_len < s.ref_len)
    bp = s.sys_len > 0 ? std::exp(1 - static_cast<double>(s.ref_len) / static_cast<double>(s.sys_len)) : 0.0;
  std::array<double, kBleuOrder> prec{};
  bool any = false;
  for (int64_t c : s.correct) any = any || c != 0;
  if (!any) return 0.0;
  double smooth = 1.0;
  int eff = kBleuOrder;
  for (int n = 1; n <= kBleuOrder; ++n) {
    const auto i = static_cast<size_t>(n - 1);
    if (s.total[i] == 0) break;
    if (effective_order) eff = n;
    if (s.correct[i] == 0) {
      smooth *= 2;
      prec[i] = 100. / (smooth * static_cast<double>(s.total[i]));
    } else {
      prec[i] = 100. * static_cast<double>(s.correct[i]) / static_cast<double>(s.total[i]);
    }
  }
  double sum = 0;
  for (int i = 0; i < eff; ++i) sum += my_log(prec[static_cast<size_t>(i)]);
  return bp * std::exp(sum / eff);
}

double sentence_bleu(std::string_view hypothesis, const std::vector<std::string>& references) {
  return bleu_from_stats(bleu_stats(hypothesis, references), true);
}

double corpus_bleu(const std::vector<std::string>& hypotheses,
                   const std::vector<std::vector<std::string>>& references) {
  BleuStats t;
  for (size_t i = 0; i < hypotheses.size() && i < references.size(); ++i) {
    const BleuStats s = bleu_stats(hypotheses[i], references[i]);
    t.sys_len += s.sys_len;
    t.ref_len += s.ref_len;
    for (size_t n = 0; n < static_cast<size_t>(kBleuOrder); ++n) {
      t.correct[n] += s.correct[n];
      t.total[n] += s.total[n];
    }
  }
  return bleu_from_stats(t, false);
}

namespace {

// re.findall(r"[\w]+|[^\s\w]", s) joined by spaces.
std::u32string split_puncts(const std::u32string& s) {
  auto word = [](char32_t c) { return c == U'_' || text::is_alnum(c); };
  Words parts;
  size_t i = 0;
  while (i < s.size()) {
    if (word(s[i])) {
      size_t j = i;
      while (j < s.size() && word(s[j])) ++j;
      parts.emplace_back(s.substr(i, j - i));
      i = j;
    } else {
      if (!text::is_space(s[i])) parts.emplace_back(1, s[i]);
      ++i;
    }
  }
  return join_words(parts);
}

// The script's normalize(): after split_puncts its "<skipped>" / "-\n" / XML-entity steps cannot match
// (every punctuation mark is already a token of its own), so what remains is the lowercasing and
// mteval's four substitutions on " s ".
Words bnorm_words(std::string_view raw) {
  const std::u32string s = split_puncts(text::lower(text::strip(text::decode(raw))));
  return text::split(mteval_regexes(U" " + text::lower(s) + U" "));
}

}  // namespace

double nngen_bleu(std::string_view hypothesis, const std::vector<std::string>& references) {
  NgramCounts ref_max;
  int64_t ref_len = -1;
  for (const auto& r : references) {
    const Words w = bnorm_words(r);
    ref_len = ref_len < 0 ? static_cast<int64_t>(w.size()) : std::min<int64_t>(ref_len, static_cast<int64_t>(w.size()));
    for (const auto& [g, c] : count_ngrams(w, kBleuOrder)) {
      int64_t& m = ref_max[g];
      m = std::max(m, c);
    }
  }
  if (ref_len < 0) ref_len = 0;
  const Words h = bnorm_words(hypothesis);
  const auto test_len = static_cast<int64_t>(h.size());
  std::array<int64_t, kBleuOrder> correct{}, guess{};
  for (int k = 1; k <= kBleuOrder; ++k) guess[static_cast<size_t>(k - 1)] = std::max<int64_t>(test_len - k + 1, 0);
  for (const auto& [g, c] : count_ngrams(h, kBleuOrder)) {
    auto it = ref_max.find(g);
    if (it != ref_max.end()) correct[g.size() - 1] += std::min(c, it->second);
  }
  double logbleu = 0.0;
  for (size_t k = 0; k < static_cast<size_t>(kBleuOrder); ++k) {
    const double add = k > 0 ? 1.0 : 0.0;
    logbleu += std::log(static_cast<double>(correct[k]) + add + DBL_MIN) -
               std::log(static_cast<double>(guess[k]) + add + DBL_MIN);
  }
  logbleu /= static_cast<double>(kBleuOrder);
  const double bp = std::min(0.0, 1 - static_cast<double>(ref_len + 1) / static_cast<double>(test_len + 1));
  return 100.0 * std::exp(logbleu + bp);
}

}  // namespace pocketlm
