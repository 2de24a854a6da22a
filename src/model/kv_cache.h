#pragma once
// KvCache: the KV cache of one sequence, as per-layer tables of blocks taken from a KvPool (paged KV).
//
// A block holds block_tokens consecutive positions of one layer: first their K rows, then their V rows. A
// token's K (or V) is n_head_kv rows of head_dim values in the cache type (formats/kv_types.h), one after
// the other; so within a block, head h of position p is at (p % block_tokens) * token_bytes + h * head_bytes.
//
// Global layers keep every position. A sliding-window layer (window W) keeps only the blocks its next
// tokens can see: positions >= next - W + 1 - keep_extra, where keep_extra (default one block) lets a
// caller roll back a few tokens (speculative decoding, chat edits); older blocks go back to the pool, so
// the layer's memory stops growing at about W + batch tokens and its blocks cycle as a ring.
//
// reserve() takes every block a batch needs up front, all or nothing: a full pool is an error naming the
// budget, never a partial write.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/kv_types.h"
#include "model/kv_pool.h"
#include "util/error.h"

namespace pocketlm {

struct KvLayout {
  int64_t n_layer = 0, n_head_kv = 0, head_dim = 0;
  KvType type_k = KvType::F16, type_v = KvType::F16;
  int64_t block_tokens = 32;
  std::vector<int64_t> windows;  // per layer: sliding window in tokens, 0 (or absent) for a global layer
  int64_t keep_extra = -1;       // extra positions a window layer keeps for roll-back; -1: one block

  int64_t window(int64_t layer) const {
    return static_cast<size_t>(layer) < windows.size() ? windows[static_cast<size_t>(layer)] : 0;
  }
  int64_t keep() const { return keep_extra >= 0 ? keep_extra : block_tokens; }
  size_t k_head_bytes() const { return kv_row_bytes(type_k, head_dim); }
  size_t v_head_bytes() const { return kv_row_bytes(type_v, head_dim); }
  size_t k_token_bytes() const { return static_cast<size_t>(n_head_kv) * k_head_bytes(); }
  size_t v_token_bytes() const { return static_cast<size_t>(n_head_kv) * v_head_bytes(); }
  size_t block_bytes() const { return static_cast<size_t>(block_tokens) * (k_token_bytes() + v_token_bytes()); }
  // Most blocks layer `layer` can hold at once in a context of n_ctx, fed in batches of up to max_batch.
  int64_t max_blocks(int64_t layer, int64_t n_ctx, int64_t max_batch) const;
  // Checks the types against the shape (q4 needs head_dim % 32 == 0, ...); errors name the flag.
  Status validate() const;
};

// One layer's blocks, for the attention kernels: positions [first_pos, end_pos) are held, in blocks of
// block_tokens starting at first_pos (a multiple of block_tokens).
struct KvLayerView {
  const KvPool* pool;
  const int32_t* ids;  // block of positions [first_pos + i * block_tokens, ...) is ids[i]
  int64_t first_pos, end_pos, block_tokens, window;
  KvType type_k, type_v;
  size_t k_head_bytes, k_token_bytes, v_head_bytes, v_token_bytes, v_offset;

  // Start of the block holding position p (first_pos <= p < end_pos) and p's token row inside it.
  const uint8_t* k_token(int64_t p) const { return at(p) + static_cast<size_t>(p % block_tokens) * k_token_bytes; }
  const uint8_t* v_token(int64_t p) const {
    return at(p) + v_offset + static_cast<size_t>(p % block_tokens) * v_token_bytes;
  }

 private:
  const uint8_t* at(int64_t p) const { return pool->block(ids[(p - first_pos) / block_tokens]); }
};

class KvCache {
 public:
  // A sequence of up to n_ctx positions whose blocks come from `pool` (block size must match the layout).
  KvCache(KvLayout layout, int64_t n_ctx, std::shared_ptr<KvPool> pool);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Makes positions [pos, pos + n) writable on every layer (taking blocks from the pool) and returns the
  // blocks of window layers no batch from pos on can see (reused as a ring for the new positions). On
  // error (pool full) nothing changes.
  Status reserve(int64_t pos, int64_t n);
  // Stores the K and V of the token at `pos` (n_head_kv * head_dim floats each), converting to the cache
  // types. `pos` must be inside a reserve()d range.
  void store(int64_t layer, int64_t pos, const float* k, const float* v);
  // Forgets positions >= n (their blocks go back to the pool). An error, changing nothing, when a window
  // layer no longer holds the positions a token at n would see.
  Status truncate(int64_t n);
  void clear();  // forgets everything

  KvLayerView view(int64_t layer) const;
  // Reads one head's K or V row at `pos` back as floats (tests, debugging).
  void read_k(int64_t layer, int64_t pos, int64_t head, float* out) const;
  void read_v(int64_t layer, int64_t pos, int64_t head, float* out) const;

  const KvLayout& layout() const { return layout_; }
  int64_t window(int64_t layer) const { return layout_.window(layer); }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t end_pos() const { return end_; }  // one past the last position written or reserved
  const KvPool& pool() const { return *pool_; }

  // Blocks (and bytes) this sequence holds now, over all layers, over global or window layers.
  int64_t blocks_held() const;
  size_t bytes_held() const { return static_cast<size_t>(blocks_held()) * layout_.block_bytes(); }
  size_t bytes_held(bool window_layers) const;
  size_t peak_bytes_held() const { return peak_blocks_ * layout_.block_bytes(); }

 private:
  struct Layer {
    std::vector<int32_t> ids;  // blocks of logical indices [first_block, first_block + ids.size())
    int64_t first_block = 0;
  };
  KvLayout layout_;
  int64_t n_ctx_;
  std::shared_ptr<KvPool> pool_;
  std::vector<Layer> layers_;
  int64_t end_ = 0;
  size_t peak_blocks_ = 0;
};

}  // namespace pocketlm
