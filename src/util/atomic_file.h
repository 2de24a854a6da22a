#pragma once
// Atomic file output: bytes go to "<path>.tmp.<pid>" beside the target, are fsync'd, and are renamed onto
// the target only on commit(). Destroying an uncommitted AtomicFile removes the temp file, so an error or
// an interrupted run never leaves a partial or broken output behind.
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/error.h"

namespace pocketlm {

class AtomicFile {
 public:
  static Expected<AtomicFile> create(const std::string& path);
  // The temporary file create(path) writes in this process, known before it exists (so a signal handler
  // that removes it can be in place before the file is).
  static std::string temp_path_for(const std::string& path);
  AtomicFile(AtomicFile&& o) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();

  Status write(const void* data, size_t n);
  Status write_zeros(size_t n);
  uint64_t bytes_written() const { return written_; }
  Status commit();  // fsync + rename; afterwards the target holds exactly what was written
  const std::string& temp_path() const { return tmp_; }

 private:
  AtomicFile() = default;
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace pocketlm
