#pragma once
// The KV cache of one sequence: per layer, K and V rows (n_head_kv × head_dim values per token) for up to
// n_ctx tokens, stored as f32 or f16. Attention reads it in place.
#include <cstdint>
#include <vector>

#include "runtime/session.h"

namespace pocketlm {

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim, KvType type);

  // Stores the K and V rows of the token at `pos` (kv_dim floats each), rounding to the cache type.
  void store(int64_t layer, int64_t pos, const float* k, const float* v);
  // Reads back one head's K or V row at `pos` as floats (head_dim values from offset head * head_dim).
  void read_k(int64_t layer, int64_t pos, int64_t offset, int64_t n, float* out) const;
  void read_v(int64_t layer, int64_t pos, int64_t offset, int64_t n, float* out) const;

  KvType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }
  size_t bytes() const;  // 2 × layers × n_ctx × kv_dim × bytes per value

 private:
  size_t index(int64_t layer, int64_t pos) const {
    return static_cast<size_t>((layer * n_ctx_ + pos) * kv_dim_);
  }
  void read(const std::vector<float>& f32, const std::vector<uint16_t>& f16, size_t at, int64_t n, float* out) const;
  int64_t n_layer_, n_ctx_, kv_dim_;
  KvType type_;
  std::vector<float> k32_, v32_;
  std::vector<uint16_t> k16_, v16_;
};

}  // namespace pocketlm
