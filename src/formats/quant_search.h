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
  // The least search, for speed: no search where ggml's reference quantizer has a plain rounding (what
  // llama-quantize does without an imatrix): the 32-value types' scale (and min) from the block's extremes,
  // byte-identical to llama-quantize, the importance ignored. The k-quants fit their sub-blocks with a quarter of
  // the fast search's candidates and try only the super-scales made from the largest sub-block value (and their
  // refits); IQ4 searches as fast does.
  nearest,
};

inline const char* quant_search_name(QuantSearch s) {
  switch (s) {
    case QuantSearch::exact: return "exact";
    case QuantSearch::nearest: return "nearest";
    default: return "fast";
  }
}

inline std::optional<QuantSearch> parse_quant_search(std::string_view s) {
  if (s == "fast") return QuantSearch::fast;
  if (s == "exact") return QuantSearch::exact;
  if (s == "nearest") return QuantSearch::nearest;
  return std::nullopt;
}

}  // namespace pocketlm
