#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "formats/float.h"
#include "kernels/dispatch.h"
#include "kernels/ref/kv_rows.h"

namespace pocketlm {

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void encode_row(KvType t, const float* x, uint8_t* dst, int64_t n) {
  switch (t) {
    case KvType::F32: std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float)); return;
    case KvType::F16: {
      auto* h = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(x[i]);
      return;
    }
    case KvType::Q8:
    case KvType::Q4: kernels::quantize_kv_row(t, x, dst, n); return;
  }
}

void decode_row(KvType t, const uint8_t* src, float* out, int64_t n) {
  switch (t) {
    case KvType::F32: std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float)); return;
    case KvType::F16: {
      const auto* h = reinterpret_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
      return;
    }
    case KvType::Q8:
    case KvType::Q4: ref::dequantize_kv_row(t, src, out, n); return;
  }
}

}  // namespace

int64_t KvLayout::max_blocks(int64_t layer, int64_t n_ctx, int64_t max_batch) const {
  const int64_t B = block_tokens, all = (n_ctx + B - 1) / B, w = window(layer);
  if (w <= 0) return all;
  // After reserve(pos, n) a window layer holds the blocks from floor((pos - w + 1 - keep) / B) to
  // floor((pos + n - 1) / B): at most this many, whatever pos is modulo B.
  const int64_t span = w + keep() + std::min(max_batch, n_ctx) - 2;
  return std::min(all, (B - 1 + span) / B + 1);
}

Status KvLayout::validate() const {
  if (n_layer <= 0 || n_head_kv <= 0 || head_dim <= 0) return Error("KV cache: empty shape");
  if (block_tokens <= 0 || block_tokens > 4096)
    return Error("KV block size must be in [1, 4096] tokens, got " + std::to_string(block_tokens));
  for (auto [t, flag] : {std::pair{type_k, "--cache-type-k"}, std::pair{type_v, "--cache-type-v"}}) {
    if (t == KvType::Q4 && head_dim % 32 != 0)
      return Error(std::string(flag) + " q4: head size " + std::to_string(head_dim) +
                   " is not a multiple of 32 (use q8 or f16)");
    if (t == KvType::Q8 && head_dim % 8 != 0)
      return Error(std::string(flag) + " q8: head size " + std::to_string(head_dim) +
                   " is not a multiple of 8 (use f16)");
  }
  return Status::Ok();
}

KvCache::KvCache(KvLayout layout, int64_t n_ctx, std::shared_ptr<KvPool> pool)
    : layout_(std::move(layout)), n_ctx_(n_ctx), pool_(std::move(pool)), layers_(static_cast<size_t>(layout_.n_layer)) {
  assert(pool_ && pool_->block_bytes() == layout_.block_bytes());
}

KvCache::~KvCache() { clear(); }

void KvCache::clear() {
  for (Layer& L : layers_) {
    pool_->release(L.ids);
    L.ids.clear();
    L.first_block = 0;
  }
  end_ = 0;
}

Status KvCache::reserve(int64_t pos, int64_t n) {
  const int64_t B = layout_.block_tokens;
  if (n <= 0) return Status::Ok();
  if (pos < 0 || pos > end_)
    return Error("KV cache: reserve at position " + std::to_string(pos) + " leaves a gap after " +
                 std::to_string(end_));
  if (pos + n > n_ctx_)
    return Error("context overflow: " + std::to_string(pos) + " + " + std::to_string(n) + " tokens > context size " +
                 std::to_string(n_ctx_));
  const int64_t last_block = (pos + n - 1) / B;
  // Plan, changing nothing: per layer the front blocks a window layer is done with (drop) and the blocks
  // to add. A window layer reuses its dropped blocks for its new positions (a ring); only the rest come
  // from the pool.
  std::vector<int64_t> drop(layers_.size(), 0), add(layers_.size(), 0);
  int64_t need = 0;
  for (size_t il = 0; il < layers_.size(); ++il) {
    const Layer& L = layers_[il];
    const int64_t w = layout_.window(static_cast<int64_t>(il));
    int64_t first = L.first_block;
    if (w > 0) {
      const int64_t seen = std::max<int64_t>(0, pos - w + 1);  // what the batch's first token sees
      if (!L.ids.empty() && L.first_block * B > seen)
        return Error("KV cache: sliding-window layer " + std::to_string(il) + " no longer holds position " +
                     std::to_string(seen));
      const int64_t new_first = floor_div(std::max<int64_t>(0, seen - layout_.keep()), B);
      if (L.ids.empty())
        first = new_first;
      else
        drop[il] = std::clamp<int64_t>(new_first - L.first_block, 0, static_cast<int64_t>(L.ids.size()));
      first = std::max(first, L.ids.empty() ? new_first : L.first_block + drop[il]);
    }
    const int64_t held_end = L.ids.empty() ? first : L.first_block + static_cast<int64_t>(L.ids.size());
    add[il] = std::max<int64_t>(0, last_block + 1 - std::max(held_end, first));
    need += std::max<int64_t>(0, add[il] - drop[il]);
  }
  std::vector<int32_t> ids(static_cast<size_t>(need));
  if (!pool_->allocate(ids)) {
    const double mib = 1.0 / (1024.0 * 1024.0);
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "KV budget exhausted: positions %lld..%lld need %lld more blocks of %.1f KiB, but %zu of the pool's "
                  "%zu blocks (%.1f MiB budget) are in use; raise --kv-budget, lower -c, or use a smaller cache type "
                  "(-ctk/-ctv q8)",
                  static_cast<long long>(pos), static_cast<long long>(pos + n - 1), static_cast<long long>(need),
                  static_cast<double>(layout_.block_bytes()) / 1024.0, pool_->n_used(), pool_->n_blocks(),
                  static_cast<double>(pool_->capacity_bytes()) * mib);
    return Error(buf);
  }
  // Apply.
  size_t next = 0;
  for (size_t il = 0; il < layers_.size(); ++il) {
    Layer& L = layers_[il];
    const int64_t w = layout_.window(static_cast<int64_t>(il));
    if (L.ids.empty() && w > 0)
      L.first_block = floor_div(std::max<int64_t>(0, std::max<int64_t>(0, pos - w + 1) - layout_.keep()), B);
    std::vector<int32_t> dropped(L.ids.begin(), L.ids.begin() + drop[il]);
    L.ids.erase(L.ids.begin(), L.ids.begin() + drop[il]);
    L.first_block += drop[il];
    if (L.ids.empty() && w > 0)
      L.first_block = std::max(L.first_block,
                               floor_div(std::max<int64_t>(0, std::max<int64_t>(0, pos - w + 1) - layout_.keep()), B));
    size_t reused = 0;
    for (int64_t a = 0; a < add[il]; ++a) L.ids.push_back(reused < dropped.size() ? dropped[reused++] : ids[next++]);
    pool_->release(std::span<const int32_t>(dropped.data() + reused, dropped.size() - reused));
  }
  assert(next == ids.size());
  end_ = std::max(end_, pos + n);
  peak_blocks_ = std::max(peak_blocks_, static_cast<size_t>(blocks_held()));
  return Status::Ok();
}

void KvCache::store(int64_t layer, int64_t pos, const float* k, const float* v) {
  const KvLayerView vw = view(layer);
  assert(pos >= vw.first_pos && pos < vw.end_pos);
  auto* kd = const_cast<uint8_t*>(vw.k_token(pos));
  auto* vd = const_cast<uint8_t*>(vw.v_token(pos));
  const int64_t hd = layout_.head_dim;
  for (int64_t h = 0; h < layout_.n_head_kv; ++h) {
    encode_row(layout_.type_k, k + h * hd, kd + static_cast<size_t>(h) * vw.k_head_bytes, hd);
    encode_row(layout_.type_v, v + h * hd, vd + static_cast<size_t>(h) * vw.v_head_bytes, hd);
  }
}

Status KvCache::truncate(int64_t n) {
  n = std::max<int64_t>(0, n);
  if (n >= end_) return Status::Ok();
  const int64_t B = layout_.block_tokens;
  for (size_t il = 0; il < layers_.size(); ++il) {
    const int64_t w = layout_.window(static_cast<int64_t>(il));
    if (w > 0 && n > 0 && layers_[il].first_block * B > std::max<int64_t>(0, n - w + 1))
      return Error("cannot roll the KV cache back to " + std::to_string(n) + " tokens: sliding-window layer " +
                   std::to_string(il) + " has already dropped positions before " +
                   std::to_string(layers_[il].first_block * B) + " (a window layer keeps " +
                   std::to_string(layout_.keep()) + " extra positions for roll-back)");
  }
  if (n == 0) {
    clear();
    return Status::Ok();
  }
  const int64_t keep_blocks = (n + B - 1) / B;  // blocks holding a position < n
  for (Layer& L : layers_) {
    const int64_t keep = std::clamp<int64_t>(keep_blocks - L.first_block, 0, static_cast<int64_t>(L.ids.size()));
    pool_->release(std::span<const int32_t>(L.ids.data() + keep, L.ids.size() - static_cast<size_t>(keep)));
    L.ids.resize(static_cast<size_t>(keep));
  }
  end_ = n;
  return Status::Ok();
}

KvLayerView KvCache::view(int64_t layer) const {
  const Layer& L = layers_[static_cast<size_t>(layer)];
  const int64_t B = layout_.block_tokens;
  KvLayerView v{};
  v.pool = pool_.get();
  v.ids = L.ids.data();
  v.first_pos = L.first_block * B;
  v.end_pos = std::min(end_, (L.first_block + static_cast<int64_t>(L.ids.size())) * B);
  v.block_tokens = B;
  v.window = layout_.window(layer);
  v.type_k = layout_.type_k;
  v.type_v = layout_.type_v;
  v.k_head_bytes = layout_.k_head_bytes();
  v.k_token_bytes = layout_.k_token_bytes();
  v.v_head_bytes = layout_.v_head_bytes();
  v.v_token_bytes = layout_.v_token_bytes();
  v.v_offset = static_cast<size_t>(B) * v.k_token_bytes;
  return v;
}

void KvCache::read_k(int64_t layer, int64_t pos, int64_t head, float* out) const {
  const KvLayerView v = view(layer);
  decode_row(layout_.type_k, v.k_token(pos) + static_cast<size_t>(head) * v.k_head_bytes, out, layout_.head_dim);
}

void KvCache::read_v(int64_t layer, int64_t pos, int64_t head, float* out) const {
  const KvLayerView v = view(layer);
  decode_row(layout_.type_v, v.v_token(pos) + static_cast<size_t>(head) * v.v_head_bytes, out, layout_.head_dim);
}

int64_t KvCache::blocks_held() const {
  int64_t n = 0;
  for (const Layer& L : layers_) n += static_cast<int64_t>(L.ids.size());
  return n;
}

size_t KvCache::bytes_held(bool window_layers) const {
  int64_t n = 0;
  for (size_t il = 0; il < layers_.size(); ++il)
    if ((layout_.window(static_cast<int64_t>(il)) > 0) == window_layers)
      n += static_cast<int64_t>(layers_[il].ids.size());
  return static_cast<size_t>(n) * layout_.block_bytes();
}

}  // namespace pocketlm
