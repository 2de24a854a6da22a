#pragma once
// KvPool: the KV cache's memory, a pool of fixed-size blocks under a hard byte budget, shared by any number
// of sequences (KvCache). A block holds block_tokens tokens of one layer's K and V rows.
//
// The arena is reserved once (anonymous mapping, no commit): a block's pages become resident only when a
// sequence first writes into it, so RSS follows the tokens actually cached, not the budget. Freed blocks are
// reused last-in first-out, so the pages already touched are reused first. Allocation is all-or-nothing
// and thread-safe (sequences on different threads may share a pool).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "util/error.h"

namespace pocketlm {

class KvPool {
 public:
  // A pool of budget_bytes / block_bytes blocks (at least one must fit).
  static Expected<std::shared_ptr<KvPool>> create(size_t block_bytes, size_t budget_bytes);
  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  // Takes ids.size() free blocks into `ids`, or none (returns false) when fewer are free.
  bool allocate(std::span<int32_t> ids);
  // Returns blocks to the pool. Releasing a block that is not allocated is a programming error (aborts).
  void release(std::span<const int32_t> ids);

  uint8_t* block(int32_t id) const { return base_ + static_cast<size_t>(id) * block_bytes_; }

  size_t block_bytes() const { return block_bytes_; }
  size_t n_blocks() const { return n_blocks_; }
  size_t n_used() const;
  size_t peak_used() const;  // most blocks ever allocated at once
  size_t bytes_used() const { return n_used() * block_bytes_; }
  size_t capacity_bytes() const { return n_blocks_ * block_bytes_; }

 private:
  KvPool(uint8_t* base, size_t map_bytes, size_t block_bytes, size_t n_blocks);
  uint8_t* base_;
  size_t map_bytes_, block_bytes_, n_blocks_;
  mutable std::mutex mu_;
  std::vector<int32_t> free_;    // stack: the most recently freed block is reused first
  std::vector<uint8_t> in_use_;  // per block, for release() checks
  size_t peak_ = 0;
};

}  // namespace pocketlm
