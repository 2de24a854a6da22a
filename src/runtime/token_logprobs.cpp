#include "runtime/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace pocketlm {

TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top_n) {
  TokenLogprob r;
  r.token = token;
  if (logits.empty()) return r;
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  const float log_z = mx + static_cast<float>(std::log(sum));
  if (token >= 0 && static_cast<size_t>(token) < logits.size()) r.logprob = logits[static_cast<size_t>(token)] - log_z;
  const size_t n = std::min(static_cast<size_t>(std::max(top_n, 0)), logits.size());
  if (n > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
      return la != lb ? la > lb : a < b;
    });
    for (size_t i = 0; i < n; ++i) r.top.emplace_back(ids[i], logits[static_cast<size_t>(ids[i])] - log_z);
  }
  return r;
}

}  // namespace pocketlm
