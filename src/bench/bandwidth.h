#pragma once
// This machine's memory read bandwidth, measured the way STREAM does (a buffer much larger than the caches,
// read by every thread, best of several passes): the ceiling for decode, which reads every weight once per
// generated token.
#include <cstddef>

namespace pocketlm {

struct Bandwidth {
  double gb_per_s = 0;  // 1e9 bytes per second, best pass
  size_t bytes = 0;     // buffer size read per pass
  int n_threads = 0;
  int passes = 0;
  int streams = 0;  // sequential streams per thread of the fastest read pattern (1, 2, 4 or 8)
};

// Reads a `bytes`-long buffer (first touched by the same threads) `passes` times with n_threads threads, in
// each read pattern (1, 2, 4, 8 streams per thread), and keeps the fastest pass.
Bandwidth measure_read_bandwidth(int n_threads, size_t bytes = size_t{256} << 20, int passes = 5);

}  // namespace pocketlm
