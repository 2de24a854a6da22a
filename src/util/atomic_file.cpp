#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace pocketlm {

std::string AtomicFile::temp_path_for(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

Expected<AtomicFile> AtomicFile::create(const std::string& path) {
  AtomicFile f;
  f.path_ = path;
  f.tmp_ = temp_path_for(path);
  f.fd_ = ::open(f.tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd_ < 0) return Error(path + ": cannot create temporary file " + f.tmp_ + ": " + std::strerror(errno));
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), fd_(o.fd_), written_(o.written_), committed_(o.committed_) {
  o.fd_ = -1;
  o.committed_ = true;  // the moved-from object owns nothing to clean up
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

Status AtomicFile::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error(path_ + ": write failed after " + std::to_string(written_) + " bytes: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Status AtomicFile::write_zeros(size_t n) {
  static const std::vector<uint8_t> zeros(4096, 0);
  while (n > 0) {
    size_t k = n < zeros.size() ? n : zeros.size();
    PLM_CHECK(write(zeros.data(), k));
    n -= k;
  }
  return Status::Ok();
}

Status AtomicFile::commit() {
  if (::fsync(fd_) != 0) return Error(path_ + ": fsync failed: " + std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    return Error(path_ + ": close failed: " + std::strerror(errno));
  }
  fd_ = -1;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    return Error(path_ + ": cannot rename " + tmp_ + " into place: " + std::strerror(errno));
  committed_ = true;
  return Status::Ok();
}

}  // namespace pocketlm
