#pragma once
// GGUF writer (version 3): metadata of every type, tensor infos, aligned data. It writes to a temporary file
// beside the target and renames it into place only when complete, so an interrupted write leaves no file.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "formats/ggml_type.h"
#include "gguf/value.h"
#include "util/error.h"

namespace pocketlm {

class GgufWriter {
 public:
  void set(std::string key, GgufValue value);  // replaces an existing key, keeps first-set order otherwise
  void set_alignment(uint64_t alignment);      // also sets general.alignment
  // Adds a tensor; `ne` is ggml order (ne[0] = row length). The bytes are copied at write time from `data`,
  // which must stay valid until write(); its size must equal the type's size for that shape.
  Status add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, std::span<const uint8_t> data);
  // Adds a tensor whose bytes are produced at write time (e.g. by a quantizer), `nbytes` long.
  Status add_tensor_lazy(std::string name, GgmlType type, std::vector<int64_t> ne,
                         std::function<Status(std::vector<uint8_t>& out)> produce);

  // Writes `path` atomically (temp file + fsync + rename).
  Status write(const std::string& path) const;
  // The whole file in memory (small files: tests, fuzz seeds, vocab-only GGUFs).
  Expected<std::vector<uint8_t>> to_bytes() const;

 private:
  struct Pending {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    size_t nbytes;
    std::span<const uint8_t> data;
    std::function<Status(std::vector<uint8_t>&)> produce;
  };
  Status check_metadata() const;
  std::vector<uint8_t> header() const;  // header, metadata and tensor infos, padded to the alignment
  // Calls sink(bytes) for the header and then every tensor's bytes and padding, in file order.
  Status emit(const std::function<Status(const uint8_t*, size_t)>& sink) const;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
  uint64_t alignment_ = 32;
};

}  // namespace pocketlm
