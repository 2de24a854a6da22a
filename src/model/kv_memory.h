#pragma once
// The KV cache's memory, by layer kind, with the formula it comes from:
//   bytes = layers x kv_heads x tokens x (K row + V row),  a row = head_dim x bytes per value (+ a 2-byte
//   scale for q8/q4), i.e. 2 x layers x kv_heads x head_dim x tokens x bytes when K and V share a type.
// Global layers hold the whole context; a sliding-window layer holds at most its window plus one batch
// plus the roll-back margin, rounded up to whole blocks (KvLayout::max_blocks).
#include <cstdint>
#include <string>
#include <vector>

#include "model/kv_cache.h"

namespace pocketlm {

struct KvMemoryKind {
  int64_t window = 0;  // 0: global layers
  int64_t layers = 0;
  int64_t tokens = 0;  // positions each layer holds at most
  size_t bytes = 0;    // all of them, K and V
  size_t scale_bytes = 0;
};

struct KvMemoryReport {
  KvLayout layout;
  int64_t n_ctx = 0;
  std::vector<KvMemoryKind> kinds;  // global first, then each window size
  size_t total = 0;
  size_t without_window = 0;  // what every layer holding the whole context would take
};

KvMemoryReport kv_memory_report(const KvLayout& layout, int64_t n_ctx, int64_t max_batch);

// A table and the formula lines; `held` / `peak` (bytes, measured from the pool) are printed when nonzero.
std::string format_kv_memory(const KvMemoryReport& r, size_t held = 0, size_t peak = 0);

}  // namespace pocketlm
