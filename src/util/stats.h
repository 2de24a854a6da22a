#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace pocketlm {
size_t peak_rss_bytes();     // high-water mark of resident memory (VmHWM)
size_t current_rss_bytes();  // VmRSS now
double now_seconds();        // monotonic clock

// The q-quantile (q in [0, 1]) of values sorted ascending, interpolated linearly between neighbours at position
// q·(n − 1): numpy.percentile's default and llama-perplexity's. 0 for no values.
template <typename T>
double percentile_sorted(std::span<const T> sorted, double q) {
  if (sorted.empty()) return 0;
  if (q <= 0) return static_cast<double>(sorted.front());
  if (q >= 1) return static_cast<double>(sorted.back());
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto i = static_cast<size_t>(pos);
  const double t = pos - static_cast<double>(i);
  const size_t j = i + 1 < sorted.size() ? i + 1 : i;
  return (1 - t) * static_cast<double>(sorted[i]) + t * static_cast<double>(sorted[j]);
}
}  // namespace pocketlm
