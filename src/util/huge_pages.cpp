#include "util/huge_pages.h"

#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

namespace pocketlm {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

HugePageBuffer::HugePageBuffer(size_t bytes) {
  if (bytes == 0) return;
#if defined(__unix__) || defined(__APPLE__)
  // Over-map by one huge page so a 2 MiB aligned start exists; the unused head and tail are unmapped.
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  const size_t span = rounded + kHugePage;
  void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  auto* base = static_cast<uint8_t*>(p);
  const auto addr = reinterpret_cast<uintptr_t>(base);
  uint8_t* aligned = base + ((kHugePage - addr % kHugePage) % kHugePage);
  if (aligned > base) ::munmap(base, static_cast<size_t>(aligned - base));
  uint8_t* end = aligned + rounded;
  if (base + span > end) ::munmap(end, static_cast<size_t>(base + span - end));
  map_ = aligned;
  map_size_ = rounded;
  data_ = aligned;
  size_ = bytes;
#if defined(MADV_HUGEPAGE)
  advised_ = ::madvise(aligned, rounded, MADV_HUGEPAGE) == 0;
#endif
#endif
}

void HugePageBuffer::release() {
#if defined(__unix__) || defined(__APPLE__)
  if (map_ != nullptr) ::munmap(map_, map_size_);
#endif
  data_ = map_ = nullptr;
  size_ = map_size_ = 0;
  advised_ = false;
}

HugePageBuffer::~HugePageBuffer() { release(); }

HugePageBuffer::HugePageBuffer(HugePageBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      map_(std::exchange(o.map_, nullptr)),
      map_size_(std::exchange(o.map_size_, 0)),
      advised_(std::exchange(o.advised_, false)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    advised_ = std::exchange(o.advised_, false);
  }
  return *this;
}

}  // namespace pocketlm
