#pragma once
#include <cstddef>
#include <cstdint>

namespace pocketlm {
size_t peak_rss_bytes();     // high-water mark of resident memory (VmHWM)
size_t current_rss_bytes();  // VmRSS now
double now_seconds();        // monotonic clock
}  // namespace pocketlm
