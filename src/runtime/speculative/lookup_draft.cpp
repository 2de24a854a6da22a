#include "runtime/speculative/lookup_draft.h"

#include <algorithm>

namespace pocketlm {

LookupDraft::LookupDraft(int ngram_min, int ngram_max)
    : ngram_min_(std::max(1, ngram_min)), ngram_max_(std::max(std::max(1, ngram_min), ngram_max)) {}

std::string LookupDraft::name() const {
  return "lookup (n-grams " + std::to_string(ngram_min_) + ".." + std::to_string(ngram_max_) + ")";
}

Status LookupDraft::propose(std::span<const int32_t> context, int n, const DraftParams&, const Sampler&, Draft& out) {
  out.clear();
  const int64_t len = static_cast<int64_t>(context.size());
  for (int64_t g = std::min<int64_t>(ngram_max_, len - 1); g >= ngram_min_ && n > 0; --g) {
    const auto key = context.subspan(static_cast<size_t>(len - g));
    // The most recent earlier occurrence (it may overlap the key, as in a repeated phrase).
    for (int64_t start = len - g - 1; start >= 0; --start) {
      if (!std::equal(key.begin(), key.end(), context.begin() + start)) continue;
      const int64_t from = start + g, to = std::min<int64_t>(len, from + n);
      out.tokens.assign(context.begin() + from, context.begin() + to);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

}  // namespace pocketlm
