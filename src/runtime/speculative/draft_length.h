#pragma once
// How many tokens to draft next. With an acceptance rate a (the chance that the target keeps a drafted
// token, given it kept the ones before), a round of k drafted tokens yields on average
//     E(k) = (1 - a^(k+1)) / (1 - a)          tokens (the accepted ones and the target's own),
// and costs, in target decode steps,
//     C(k) = 1 + k * (c + v)
// where c is the draft's cost per token (DraftSource::cost_per_token) and v what each extra token adds to the
// target's batched pass (kVerifyCostPerToken). The adaptive length is the k in [max(1, min), max] that
// maximises E(k) / C(k), the speedup over plain decoding predicted by the same formula bench prints.
// The acceptance rate is a running estimate (exponential average over rounds), so the length follows the
// text: long while the draft agrees, short where it does not.
#include <cstdint>

#include "runtime/speculative/draft_source.h"

namespace pocketlm {

// Cost of one more token in the target's verification pass, as a fraction of a decode step (a batch of 16
// tokens costs a memory-bound CPU about 2.5 decode steps).
inline constexpr double kVerifyCostPerToken = 0.1;

// Expected tokens per round of k drafted tokens at acceptance rate a.
double expected_tokens(double a, double k);
// Predicted speedup over plain decoding: E(k) / (1 + k (c + v)).
double predicted_speedup(double a, double k, double draft_cost_per_token,
                         double verify_cost_per_token = kVerifyCostPerToken);

class DraftLength {
 public:
  DraftLength(const DraftParams& params, double draft_cost_per_token);
  int next() const { return next_; }
  // Records a round: `drafted` tokens proposed, the first `accepted` of them kept.
  void update(int drafted, int accepted);
  double acceptance() const { return rate_; }

 private:
  void choose();
  DraftParams params_;
  double cost_;
  double rate_ = 0.7;  // prior until the first rounds are seen
  int next_;
};

}  // namespace pocketlm
