#pragma once
// Anonymous memory for large read-mostly buffers (the repacked decode weights), aligned to 2 MiB and
// advised as transparent huge pages (madvise MADV_HUGEPAGE, the kernel's default THP mode "madvise").
// A decode step streams every weight once: on 4 KiB pages that is a TLB miss (a page walk, two-level in a VM)
// every 4 KiB of every stream. Measured on this project's VM (AMD EPYC, one thread summing 256 MiB in
// 64-byte loads): 22.4 GB/s on 4 KiB pages, 32.7 GB/s on huge pages. Where THP is off or unsupported the
// advice fails harmlessly and the buffer is ordinary memory. Pages are touched (and counted in RSS) only as
// they are written.
#include <cstddef>
#include <cstdint>

namespace pocketlm {

class HugePageBuffer {
 public:
  HugePageBuffer() = default;
  // nullptr data() when the memory could not be mapped.
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(HugePageBuffer&& o) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& o) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Whether the kernel accepted the huge-page advice (not whether it has backed the range with huge pages yet).
  bool advised() const { return advised_; }

 private:
  void release();
  uint8_t* data_ = nullptr;  // 2 MiB aligned, inside [map_, map_ + map_size_)
  size_t size_ = 0;
  uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  bool advised_ = false;
};

}  // namespace pocketlm
