#include "runtime/speculative/draft_length.h"

#include <algorithm>
#include <cmath>

namespace pocketlm {

double expected_tokens(double a, double k) {
  if (a >= 1.0) return k + 1.0;
  return (1.0 - std::pow(a, k + 1)) / (1.0 - a);
}

double predicted_speedup(double a, double k, double draft_cost_per_token, double verify_cost_per_token) {
  return expected_tokens(a, k) / (1.0 + k * (draft_cost_per_token + verify_cost_per_token));
}

DraftLength::DraftLength(const DraftParams& params, double draft_cost_per_token)
    : params_(params), cost_(draft_cost_per_token), next_(std::max(1, params.max)) {
  choose();
}

void DraftLength::update(int drafted, int accepted) {
  if (drafted <= 0) return;
  // A round tells, per position reached, whether the token was kept: `accepted` successes, and one failure
  // unless everything was kept. The per-round estimate is weighed by the positions it saw.
  const int seen = accepted + (accepted < drafted ? 1 : 0);
  const double round_rate = static_cast<double>(accepted) / seen;
  const double w = std::min(0.5, 0.1 * seen);
  rate_ = (1.0 - w) * rate_ + w * round_rate;
  choose();
}

void DraftLength::choose() {
  const int hi = std::max(1, params_.max);
  if (!params_.adaptive) {
    next_ = hi;
    return;
  }
  const int lo = std::clamp(params_.min, 1, hi);
  int best = lo;
  double best_speedup = -1;
  for (int k = lo; k <= hi; ++k) {
    const double s = predicted_speedup(rate_, k, cost_);
    if (s > best_speedup + 1e-9) {
      best_speedup = s;
      best = k;
    }
  }
  next_ = best;
}

}  // namespace pocketlm
