#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pocketlm {

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(path + ": cannot open: " + std::strerror(errno));
  auto f = open_fd(fd, 0, 0, path);
  ::close(fd);
  return f;
}

Expected<std::shared_ptr<MappedFile>> MappedFile::open_fd(int fd, uint64_t offset, uint64_t length, std::string name) {
  if (fd < 0) return Error(name + ": not an open file descriptor (" + std::to_string(fd) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error(name + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Error(name + ": not a regular file");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (offset > file_size || length > file_size - offset)
    return Error(name + ": " + std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                 " go past the end of the file (" + std::to_string(file_size) + " bytes)");
  if (length == 0) length = file_size - offset;
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = std::move(name);
  f->size_ = static_cast<size_t>(length);
  if (f->size_ > 0) {
    const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t base = offset / page * page;
    f->map_size_ = static_cast<size_t>(offset - base + length);
    void* p = ::mmap(nullptr, f->map_size_, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(base));
    if (p == MAP_FAILED) return Error(f->path_ + ": mmap failed: " + std::strerror(errno));
    f->map_base_ = p;
    f->data_ = static_cast<const uint8_t*>(p) + (offset - base);
    f->mapped_ = true;
  }
  return f;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::span<const uint8_t> bytes, std::string name) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = std::move(name);
  f->size_ = bytes.size();
  // Over-allocate a little and align to 64 so tensor views are as aligned as in a real mmap.
  f->owned_ = std::make_unique<uint8_t[]>(bytes.size() + 64);
  if (!bytes.empty()) std::memcpy(f->owned_.get(), bytes.data(), bytes.size());
  f->data_ = f->owned_.get();
  return f;
}

void MappedFile::release(const void* p, size_t n) const {
  if (!mapped_ || n == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin)
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advice: failure is harmless
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(map_base_, map_size_);
}

}  // namespace pocketlm
