#include "eval/metrics_rouge.h"

#include <algorithm>
#include <map>

#include "eval/metrics_text.h"

namespace pocketlm {
namespace {

using Tokens = std::vector<std::string>;

double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

RougeScore ngram_score(const Tokens& ref, const Tokens& pred, size_t n) {
  std::map<std::vector<std::string>, int64_t> rc, pc;
  auto count = [n](const Tokens& t, std::map<std::vector<std::string>, int64_t>& c) {
    int64_t total = 0;
    for (size_t i = 0; i + n <= t.size(); ++i) {
      ++c[std::vector<std::string>(t.begin() + static_cast<std::ptrdiff_t>(i),
                                   t.begin() + static_cast<std::ptrdiff_t>(i + n))];
      ++total;
    }
    return total;
  };
  const int64_t nr = count(ref, rc), np = count(pred, pc);
  int64_t inter = 0;
  for (const auto& [g, c] : rc) {
    auto it = pc.find(g);
    if (it != pc.end()) inter += std::min(c, it->second);
  }
  RougeScore s;
  s.precision = static_cast<double>(inter) / static_cast<double>(std::max<int64_t>(np, 1));
  s.recall = static_cast<double>(inter) / static_cast<double>(std::max<int64_t>(nr, 1));
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

RougeScore lcs_score(const Tokens& ref, const Tokens& pred) {
  if (ref.empty() || pred.empty()) return {};
  std::vector<int64_t> prev(pred.size() + 1, 0), cur(pred.size() + 1, 0);
  for (size_t i = 1; i <= ref.size(); ++i) {
    for (size_t j = 1; j <= pred.size(); ++j)
      cur[j] = ref[i - 1] == pred[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const auto lcs = static_cast<double>(prev[pred.size()]);
  RougeScore s;
  s.precision = lcs / static_cast<double>(pred.size());
  s.recall = lcs / static_cast<double>(ref.size());
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

}  // namespace

std::vector<std::string> rouge_tokenize(std::string_view text) {
  const std::u32string low = text::lower(text::decode(text));
  std::vector<std::string> out;
  std::string cur;
  for (char32_t c : low) {
    if ((c >= U'a' && c <= U'z') || (c >= U'0' && c <= U'9')) {
      cur.push_back(static_cast<char>(c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

RougeScores rouge(std::string_view reference, std::string_view prediction) {
  const Tokens r = rouge_tokenize(reference), p = rouge_tokenize(prediction);
  return {ngram_score(r, p, 1), ngram_score(r, p, 2), lcs_score(r, p)};
}

RougeScores rouge_multi(const std::vector<std::string>& references, std::string_view prediction) {
  RougeScores best;
  bool first = true;
  for (const auto& ref : references) {
    const RougeScores s = rouge(ref, prediction);
    if (first || s.rouge1.fmeasure > best.rouge1.fmeasure) best.rouge1 = s.rouge1;
    if (first || s.rouge2.fmeasure > best.rouge2.fmeasure) best.rouge2 = s.rouge2;
    if (first || s.rougeL.fmeasure > best.rougeL.fmeasure) best.rougeL = s.rougeL;
    first = false;
  }
  return best;
}

}  // namespace pocketlm
