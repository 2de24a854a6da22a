#include "bench/bandwidth.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "util/huge_pages.h"
#include "util/stats.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

// Sum of 64-bit words, reading S equal parts of [p, p + n) side by side with independent vector accumulators:
// several streams keep more cache-line fetches in flight than one, but past the hardware prefetchers' number
// of streams they lose. Which count reads fastest depends on the CPU (on this project's VMs, 4 streams read
// ~1.6x faster than 1 on one, while another streams fastest with 1-2), so the probe tries 1, 2, 4 and 8 and
// keeps the best: the bandwidth a well-written kernel can reach, whatever its access pattern.
template <int S>
uint64_t sum_words(const uint64_t* p, int64_t n) {
  const int64_t part = n / S / 8 * 8;
  uint64_t a[S][8] = {};
  for (int64_t i = 0; i < part; i += 8) {
    for (int s = 0; s < S; ++s) {
      const uint64_t* q = p + s * part + i;
      for (int k = 0; k < 8; ++k) a[s][k] += q[k];
    }
  }
  uint64_t sum = 0;
  for (int64_t i = S * part; i < n; ++i) sum += p[i];
  for (const auto& row : a) {
    for (uint64_t v : row) sum += v;
  }
  return sum;
}

using SumFn = uint64_t (*)(const uint64_t*, int64_t);
constexpr SumFn kVariants[] = {sum_words<1>, sum_words<2>, sum_words<4>, sum_words<8>};
constexpr int kVariantStreams[] = {1, 2, 4, 8};

}  // namespace

Bandwidth measure_read_bandwidth(int n_threads, size_t bytes, int passes) {
  Bandwidth r;
  r.n_threads = std::max(1, n_threads);
  r.passes = std::max(1, passes);
  const auto n_words = static_cast<int64_t>(bytes / sizeof(uint64_t));
  r.bytes = static_cast<size_t>(n_words) * sizeof(uint64_t);
  // On transparent huge pages, as the repacked weights are (util/huge_pages.h): on 4 KiB pages the probe
  // measured 22.4 against 32.7 GB/s on one thread, below what decode itself then streams.
  HugePageBuffer mem(r.bytes);  // untouched: pages come on first write
  if (mem.data() == nullptr) return r;
  auto* buf = reinterpret_cast<uint64_t*>(mem.data());
  ThreadPool pool(r.n_threads);
  // First touch by the readers, so each thread's pages are local to it (NUMA) and all are resident.
  pool.parallel_for(n_words, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  });
  std::vector<uint64_t> sink(static_cast<size_t>(r.n_threads), 0);
  double best = 1e30;
  for (int pass = 0; pass < r.passes; ++pass) {
    for (size_t v = 0; v < std::size(kVariants); ++v) {
      const double t0 = now_seconds();
      pool.parallel_for(
          n_words, [&](int64_t b, int64_t e, int t) { sink[static_cast<size_t>(t)] += kVariants[v](buf + b, e - b); });
      const double dt = now_seconds() - t0;
      if (dt < best) {
        best = dt;
        r.streams = kVariantStreams[v];
      }
    }
  }
  // Keep the sums alive so the reads are not optimized away.
  volatile uint64_t keep = 0;
  for (uint64_t s : sink) keep = keep + s;
  r.gb_per_s = static_cast<double>(r.bytes) / best / 1e9;
  return r;
}

}  // namespace pocketlm
