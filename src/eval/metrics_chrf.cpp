#include "eval/metrics_chrf.h"

#include <algorithm>
#include <map>

#include "eval/metrics_text.h"

namespace pocketlm {
namespace {

using Counts = std::map<std::u32string, int64_t>;

std::array<Counts, kChrfCharOrder> char_ngrams(std::string_view s) {
  std::u32string line;
  for (const auto& w : text::split(text::decode(s))) line += w;  // ''.join(line.split())
  std::array<Counts, kChrfCharOrder> out;
  for (size_t n = 1; n <= static_cast<size_t>(kChrfCharOrder); ++n)
    for (size_t i = 0; i + n <= line.size(); ++i) ++out[n - 1][line.substr(i, n)];
  return out;
}

}  // namespace

double chrf_from_stats(const ChrfStats& st) {
  const double factor = kChrfBeta * kChrfBeta;
  double avg_prec = 0, avg_rec = 0;
  int effective = 0;
  for (int i = 0; i < kChrfCharOrder; ++i) {
    const int64_t n_hyp = st[static_cast<size_t>(3 * i)], n_ref = st[static_cast<size_t>(3 * i + 1)],
                  n_match = st[static_cast<size_t>(3 * i + 2)];
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += static_cast<double>(n_match) / static_cast<double>(n_hyp);
      avg_rec += static_cast<double>(n_match) / static_cast<double>(n_ref);
      ++effective;
    }
  }
  if (effective == 0) return 0.0;
  avg_prec /= effective;
  avg_rec /= effective;
  if (avg_prec + avg_rec == 0) return 0.0;
  double score = (1 + factor) * avg_prec * avg_rec;
  score /= (factor * avg_prec) + avg_rec;
  return 100 * score;
}

ChrfStats chrf_stats(std::string_view hypothesis, const std::vector<std::string>& references) {
  const auto hyp = char_ngrams(hypothesis);
  ChrfStats best{};
  double best_f = -1.0;
  for (const auto& ref_text : references) {
    const auto ref = char_ngrams(ref_text);
    ChrfStats st{};
    for (size_t n = 0; n < static_cast<size_t>(kChrfCharOrder); ++n) {
      int64_t hyp_count = 0, match = 0, ref_count = 0;
      for (const auto& [g, c] : hyp[n]) {
        hyp_count += c;
        auto it = ref[n].find(g);
        if (it != ref[n].end()) match += std::min(c, it->second);
      }
      for (const auto& [g, c] : ref[n]) ref_count += c;
      st[3 * n] = ref[n].empty() ? 0 : hyp_count;
      st[3 * n + 1] = ref_count;
      st[3 * n + 2] = match;
    }
    const double f = chrf_from_stats(st);
    if (f > best_f) {
      best_f = f;
      best = st;
    }
  }
  return best;
}

double sentence_chrf(std::string_view hypothesis, const std::vector<std::string>& references) {
  return chrf_from_stats(chrf_stats(hypothesis, references));
}

double corpus_chrf(const std::vector<std::string>& hypotheses,
                   const std::vector<std::vector<std::string>>& references) {
  ChrfStats total{};
  for (size_t i = 0; i < hypotheses.size() && i < references.size(); ++i) {
    const ChrfStats s = chrf_stats(hypotheses[i], references[i]);
    for (size_t k = 0; k < total.size(); ++k) total[k] += s[k];
  }
  return chrf_from_stats(total);
}

}  // namespace pocketlm
