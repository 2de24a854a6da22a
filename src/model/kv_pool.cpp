#include "model/kv_pool.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace pocketlm {

Expected<std::shared_ptr<KvPool>> KvPool::create(size_t block_bytes, size_t budget_bytes) {
  if (block_bytes == 0) return Error("KV pool: block size is 0 bytes");
  const size_t n = budget_bytes / block_bytes;
  if (n == 0)
    return Error("KV budget of " + std::to_string(budget_bytes) + " bytes is smaller than one KV block (" +
                 std::to_string(block_bytes) + " bytes)");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return Error("KV budget of " + std::to_string(budget_bytes) + " bytes is too many blocks");
  const size_t bytes = n * block_bytes;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return Error("KV pool: cannot reserve " + std::to_string(bytes) + " bytes of address space for the KV budget");
  return std::shared_ptr<KvPool>(new KvPool(static_cast<uint8_t*>(p), bytes, block_bytes, n));
}

KvPool::KvPool(uint8_t* base, size_t map_bytes, size_t block_bytes, size_t n_blocks)
    : base_(base), map_bytes_(map_bytes), block_bytes_(block_bytes), n_blocks_(n_blocks), in_use_(n_blocks, 0) {
  free_.reserve(n_blocks);
  // Block 0 on top: a fresh pool hands out blocks in address order.
  for (size_t i = n_blocks; i-- > 0;) free_.push_back(static_cast<int32_t>(i));
}

KvPool::~KvPool() { munmap(base_, map_bytes_); }

bool KvPool::allocate(std::span<int32_t> ids) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ids.size() > free_.size()) return false;
  for (int32_t& id : ids) {
    id = free_.back();
    free_.pop_back();
    in_use_[static_cast<size_t>(id)] = 1;
  }
  peak_ = std::max(peak_, n_blocks_ - free_.size());
  return true;
}

void KvPool::release(std::span<const int32_t> ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= n_blocks_ || !in_use_[static_cast<size_t>(id)]) {
      std::fprintf(stderr, "KvPool::release: block %d is not allocated (double free)\n", id);
      std::abort();
    }
    in_use_[static_cast<size_t>(id)] = 0;
    free_.push_back(id);
  }
}

size_t KvPool::n_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return n_blocks_ - free_.size();
}

size_t KvPool::peak_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}

}  // namespace pocketlm
