#pragma once
// One round of speculative decoding: a draft source proposes k tokens, the target scores them all in one
// batched forward pass (k + 1 positions), the acceptance rule keeps a prefix, and the target's KV cache is
// rolled back past it. Each round yields between 1 and k + 1 tokens with exactly the distribution plain
// decoding has (acceptance.h); a round costs one target pass plus k draft tokens, so memory-bound devices,
// where a pass over k + 1 tokens costs little more than over one, gain what the draft gets right.
#include <cstdint>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"
#include "runtime/speculative/acceptance.h"
#include "runtime/speculative/draft_length.h"
#include "runtime/speculative/draft_source.h"

namespace pocketlm {

struct SpeculativeStats {
  int64_t rounds = 0;    // target passes (each verifies one draft, possibly empty)
  int64_t drafted = 0;   // tokens the draft proposed
  int64_t accepted = 0;  // proposed tokens the target kept
  double draft_seconds = 0;
  double verify_seconds = 0;
  double acceptance_rate() const {
    return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0;
  }
  // Drafted tokens kept per round (each round adds the target's own token: tokens per pass = this + 1).
  double mean_accepted_length() const {
    return rounds > 0 ? static_cast<double>(accepted) / static_cast<double>(rounds) : 0;
  }
  double draft_share() const {
    const double t = draft_seconds + verify_seconds;
    return t > 0 ? draft_seconds / t : 0;
  }
};

class SpeculativeDecoder {
 public:
  SpeculativeDecoder(Session& target, DraftSource& draft, const DraftParams& params,
                     AcceptanceRule rule = accept_lossless);
  // The target holds the sequence but `last` (a token already emitted, not evaluated yet). Drafts after the
  // sequence and `last`, evaluates `last` and the draft in one pass, keeps the accepted prefix in the target's
  // cache and sets `out` to the accepted draft tokens followed by the target's own next token (the next
  // round's `last`). `sampler` gives the chain (its penalty window is not changed: the caller accepts the
  // tokens it emits) and the random stream for the acceptance draws. Needs one free position in the context.
  Status step(int32_t last, Sampler& sampler, std::vector<int32_t>& out);
  const SpeculativeStats& stats() const { return stats_; }

 private:
  Session& target_;
  DraftSource& draft_source_;
  DraftParams params_;
  AcceptanceRule rule_;
  DraftLength length_;
  SpeculativeStats stats_;
  std::vector<int32_t> context_, batch_;
  Draft draft_;
  std::vector<TokenProb> p_;
};

}  // namespace pocketlm
