#pragma once
// How hard the encoders search for their scales (docs/quantization.md, "Quantizer speed").
#include <cstdint>
#include <optional>
#include <string_view>

namespace pocketlm {

enum class QuantSearch : uint8_t {
  // A grid of candidate scales per group, each scored with vectorized loops, the best refitted by weighted
  // least squares and re-rounded while its error falls; fewer super-scale candidates in the k-quants. The
  // default: within a few tenths of a percent of `exact` in weighted error, tens of times faster.
  fast,
  // The exact sweep over every scale where a rounding changes (scale_search.h) and the full candidate lists.
  exact,
};

inline const char* quant_search_name(QuantSearch s) { return s == QuantSearch::exact ? "exact" : "fast"; }

inline std::optional<QuantSearch> parse_quant_search(std::string_view s) {
  if (s == "fast") return QuantSearch::fast;
  if (s == "exact") return QuantSearch::exact;
  return std::nullopt;
}

}  // namespace pocketlm
