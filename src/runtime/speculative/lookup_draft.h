#pragma once
// Prompt lookup (n-gram) drafting: no model. The last n tokens of the sequence are searched for earlier in
// it (the prompt and the text generated so far), longest n first and the most recent occurrence first; the
// tokens that followed that occurrence are the draft. Summaries, edits and commit messages copy long spans
// of their input, and there the target accepts most of them for the price of one batched pass.
#include "runtime/speculative/draft_source.h"

namespace pocketlm {

class LookupDraft final : public DraftSource {
 public:
  // n-grams of ngram_min..ngram_max tokens (1 <= min <= max).
  explicit LookupDraft(int ngram_min = 1, int ngram_max = 4);
  std::string name() const override;
  double cost_per_token() const override { return 0.0; }
  Status propose(std::span<const int32_t> context, int n, const DraftParams& params, const Sampler& chain,
                 Draft& out) override;

 private:
  int ngram_min_, ngram_max_;
};

}  // namespace pocketlm
