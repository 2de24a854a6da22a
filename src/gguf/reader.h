#pragma once
// GGUF reader (versions 2 and 3). It validates before it trusts: every count, length, dimension and tensor
// extent is checked against the file size, and every failure names the file, the field or tensor, and the
// byte offset. Tensor data are zero-copy views into the memory-mapped file.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml_type.h"
#include "gguf/value.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace pocketlm {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  int n_dims = 0;
  int64_t ne[kGgufMaxDims] = {1, 1, 1, 1};  // ne[0] is the row length (fastest-varying)
  uint64_t offset = 0;                      // relative to the start of the data section
  const uint8_t* data = nullptr;            // view into the mapped file
  size_t nbytes = 0;
  // The rows are interleaved 16 at a time for decode (kernels/interleave.h), in a copy the model made at
  // load (model/weights_repack.h); a file's own tensors always hold GGUF's rows.
  bool interleaved_x16 = false;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  std::string shape_string() const;  // "[576, 49152]"
};

class GgufFile {
 public:
  // Maps and validates `path`. Errors name the file and the offset of the bad field.
  static Expected<GgufFile> open(const std::string& path);
  // Parses bytes already in memory (fuzzing, tests); `name` is used in error messages.
  static Expected<GgufFile> parse(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return file_->size(); }

  // Metadata, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: an error names the file and key when the key is missing or of the wrong type.
  Expected<std::string> get_string(std::string_view key) const;
  Expected<int64_t> get_int(std::string_view key) const;   // any integer type
  Expected<double> get_float(std::string_view key) const;  // FLOAT32/FLOAT64 (or an integer)
  Expected<bool> get_bool(std::string_view key) const;
  Expected<std::vector<std::string>> get_string_array(std::string_view key) const;
  Expected<std::vector<float>> get_f32_array(std::string_view key) const;
  Expected<std::vector<int64_t>> get_int_array(std::string_view key) const;
  // With a default when the key is absent (a present key of the wrong type is still an error).
  Expected<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
  Expected<double> get_float_or(std::string_view key, double fallback) const;
  Expected<std::string> get_string_or(std::string_view key, std::string fallback) const;
  Expected<bool> get_bool_or(std::string_view key, bool fallback) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const;

  std::shared_ptr<MappedFile> mapped() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  friend class GgufParser;
};

// A tensor's elements as f32, row after row (dequantized when the type is quantized). The tensor's rows must
// be in GGUF's layout (not a model's interleaved copy) and its type one that can be dequantized.
std::vector<float> tensor_to_f32(const GgufTensor& t);

}  // namespace pocketlm
