#pragma once
// chrF2 as sacreBLEU's CHRF (sacrebleu 2.x defaults: character n-grams of order 1..6, no word n-grams,
// beta 2, case-sensitive, whitespace removed before extracting n-grams, no epsilon smoothing: precision and
// recall averaged over the orders that have both hypothesis and reference n-grams). Scores are in [0, 100].
// With several references a segment keeps the statistics of the reference with the best sentence chrF
// (the first on ties); corpus chrF sums the segments' statistics.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm {

inline constexpr int kChrfCharOrder = 6;
inline constexpr int kChrfBeta = 2;

// Per order n (0-based): [3n] hypothesis n-grams, [3n+1] reference n-grams, [3n+2] matches.
using ChrfStats = std::array<int64_t, 3 * kChrfCharOrder>;

ChrfStats chrf_stats(std::string_view hypothesis, const std::vector<std::string>& references);
double chrf_from_stats(const ChrfStats& stats);
double sentence_chrf(std::string_view hypothesis, const std::vector<std::string>& references);
// references[i] are the references of hypotheses[i].
double corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references);

}  // namespace pocketlm
