#include "runtime/kv_cache.h"

#include <utility>

#include "quant/formats/float.h"

namespace pocketlm {

KvCache::KvCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim, KvType type, std::vector<int64_t> windows)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim), type_(type), windows_(std::move(windows)) {
  const size_t n = static_cast<size_t>(n_layer * n_ctx * kv_dim);
  if (type == KvType::F32) {
    k32_.resize(n);
    v32_.resize(n);
  } else {
    k16_.resize(n);
    v16_.resize(n);
  }
}

void KvCache::store(int64_t layer, int64_t pos, const float* k, const float* v) {
  const size_t at = index(layer, pos);
  for (int64_t i = 0; i < kv_dim_; ++i) {
    if (type_ == KvType::F32) {
      k32_[at + i] = k[i];
      v32_[at + i] = v[i];
    } else {
      k16_[at + i] = fp32_to_fp16(k[i]);
      v16_[at + i] = fp32_to_fp16(v[i]);
    }
  }
}

void KvCache::read(const std::vector<float>& f32, const std::vector<uint16_t>& f16, size_t at, int64_t n, float* out) const {
  if (type_ == KvType::F32) {
    for (int64_t i = 0; i < n; ++i) out[i] = f32[at + i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(f16[at + i]);
  }
}

void KvCache::read_k(int64_t layer, int64_t pos, int64_t offset, int64_t n, float* out) const {
  read(k32_, k16_, index(layer, pos) + static_cast<size_t>(offset), n, out);
}
void KvCache::read_v(int64_t layer, int64_t pos, int64_t offset, int64_t n, float* out) const {
  read(v32_, v16_, index(layer, pos) + static_cast<size_t>(offset), n, out);
}

size_t KvCache::bytes() const {
  return type_ == KvType::F32 ? (k32_.size() + v32_.size()) * sizeof(float) : (k16_.size() + v16_.size()) * sizeof(uint16_t);
}

}  // namespace pocketlm
