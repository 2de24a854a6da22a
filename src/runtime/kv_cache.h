#pragma once
// The KV cache of one sequence: per layer, K and V rows (n_head_kv × head_dim values per token) for up to
// n_ctx tokens, stored as f32 or f16. Attention reads it in place.
#include <cstdint>
#include <vector>

#include "runtime/session.h"

namespace pocketlm {

class KvCache {
 public:
  // windows: per layer, its sliding window in tokens (0 or absent: global layer).
  KvCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim, KvType type, std::vector<int64_t> windows = {});
  int64_t window(int64_t layer) const {
    return static_cast<size_t>(layer) < windows_.size() ? windows_[static_cast<size_t>(layer)] : 0;
  }

  // Stores the K and V rows of the token at `pos` (kv_dim floats each), rounding to the cache type.
  void store(int64_t layer, int64_t pos, const float* k, const float* v);
  // Reads back one head's K or V row at `pos` as floats (head_dim values from offset head * head_dim).
  void read_k(int64_t layer, int64_t pos, int64_t offset, int64_t n, float* out) const;
  void read_v(int64_t layer, int64_t pos, int64_t offset, int64_t n, float* out) const;

  // Raw rows for the attention kernels: layer `layer`'s K (or V) row of position p starts at
  // k_rows(layer) + p * row_bytes(); values are f16 (KvType::F16) or f32.
  const uint8_t* k_rows(int64_t layer) const { return rows(k32_, k16_, layer); }
  const uint8_t* v_rows(int64_t layer) const { return rows(v32_, v16_, layer); }
  size_t row_bytes() const { return static_cast<size_t>(kv_dim_) * (type_ == KvType::F32 ? 4 : 2); }

  KvType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }
  size_t bytes() const;  // 2 × layers × n_ctx × kv_dim × bytes per value

 private:
  size_t index(int64_t layer, int64_t pos) const {
    return static_cast<size_t>((layer * n_ctx_ + pos) * kv_dim_);
  }
  const uint8_t* rows(const std::vector<float>& f32, const std::vector<uint16_t>& f16, int64_t layer) const {
    return type_ == KvType::F32 ? reinterpret_cast<const uint8_t*>(f32.data() + index(layer, 0))
                                : reinterpret_cast<const uint8_t*>(f16.data() + index(layer, 0));
  }
  void read(const std::vector<float>& f32, const std::vector<uint16_t>& f16, size_t at, int64_t n, float* out) const;
  int64_t n_layer_, n_ctx_, kv_dim_;
  KvType type_;
  std::vector<int64_t> windows_;
  std::vector<float> k32_, v32_;
  std::vector<uint16_t> k16_, v16_;
};

}  // namespace pocketlm
