#include "runtime/speculative/acceptance.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

namespace pocketlm {

float probability_of(std::span<const TokenProb> dist, int32_t id) {
  for (const TokenProb& t : dist)
    if (t.id == id) return t.p;
  return 0.0f;
}

double uniform01(std::mt19937& rng) { return std::generate_canonical<double, 53>(rng); }

Verdict accept_lossless(std::span<const TokenProb> p, std::span<const TokenProb> q, int32_t x, std::mt19937& rng) {
  const double px = probability_of(p, x);
  const double qx = q.empty() ? 1.0 : probability_of(q, x);
  // p(x) >= q(x) always accepts and p(x) = 0 never does: neither draws.
  if (px > 0 && (px >= qx || uniform01(rng) * qx < px)) return {true, x};

  // The residual max(0, p - q), renormalised by draw_token.
  std::vector<TokenProb> residual;
  residual.reserve(p.size());
  if (q.empty()) {
    for (const TokenProb& t : p)
      if (t.id != x) residual.push_back(t);
  } else {
    std::unordered_map<int32_t, float> qmap;
    qmap.reserve(q.size());
    for (const TokenProb& t : q) qmap.emplace(t.id, t.p);
    for (const TokenProb& t : p) {
      const auto it = qmap.find(t.id);
      const float r = t.p - (it == qmap.end() ? 0.0f : it->second);
      if (r > 0) residual.push_back({t.id, r});
    }
  }
  // p == q up to rounding leaves nothing: a rejection then had probability ~0, and p is the right fallback.
  if (residual.empty()) return {false, draw_token(p, rng)};
  return {false, draw_token(residual, rng)};
}

}  // namespace pocketlm
