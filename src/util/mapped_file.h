#pragma once
// A read-only memory map of a whole file. Weights are views into it (zero-copy); pages are touched only
// when a tensor is read, so RSS after load is what the run uses, not the file size.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/error.h"

namespace pocketlm {

class MappedFile {
 public:
  static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);
  // Maps `length` bytes from `offset` of an open descriptor (length 0: to the end of the file), e.g. a model
  // stored uncompressed inside an Android APK (AAsset_openFileDescriptor). The descriptor stays the
  // caller's: it may be closed once this returns. `name` is used in error messages.
  static Expected<std::shared_ptr<MappedFile>> open_fd(int fd, uint64_t offset, uint64_t length, std::string name);
  // Wraps bytes already in memory (tests, fuzzing); the buffer is copied and owned.
  static std::shared_ptr<MappedFile> from_bytes(std::span<const uint8_t> bytes, std::string name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Drops the whole pages inside [p, p + n) from this process's resident set (a mapped file only; bytes in
  // memory stay). They read back from the file if touched again: a caller that made a copy of a range
  // releases the original so that memory is not counted twice.
  void release(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  void* map_base_ = nullptr;  // the mapping starts on a page boundary at or before data_
  size_t map_size_ = 0;
  std::unique_ptr<uint8_t[]> owned_;
  std::string path_;
};

}  // namespace pocketlm
