#include "gguf/writer.h"

#include <cstring>

#include "gguf/reader.h"
#include "util/atomic_file.h"

namespace pocketlm {

void GgufWriter::set(std::string key, GgufValue value) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set_alignment(uint64_t alignment) {
  assert(alignment > 0 && (alignment & (alignment - 1)) == 0);
  alignment_ = alignment;
  set("general.alignment", GgufValue::of_u32(static_cast<uint32_t>(alignment)));
}

namespace {
Expected<size_t> tensor_bytes(const std::string& name, GgmlType type, const std::vector<int64_t>& ne) {
  if (ne.empty() || ne.size() > kGgufMaxDims) return Error("tensor '" + name + "': must have 1..4 dimensions");
  const TypeTraits& t = type_traits(type);
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0) return Error("tensor '" + name + "': dimension " + std::to_string(d) + " is not positive");
    n *= d;
  }
  if (ne[0] % t.block_size != 0)
    return Error("tensor '" + name + "': row length " + std::to_string(ne[0]) + " is not a multiple of " +
                 std::string(t.name) + "'s block size " + std::to_string(t.block_size));
  return static_cast<size_t>(n / t.block_size) * t.type_size;
}
}  // namespace

Status GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, std::span<const uint8_t> data) {
  PLM_TRY(size_t nbytes, tensor_bytes(name, type, ne));
  if (data.size() != nbytes)
    return Error("tensor '" + name + "': " + std::to_string(data.size()) + " bytes given, the shape needs " +
                 std::to_string(nbytes));
  tensors_.push_back({std::move(name), type, std::move(ne), nbytes, data, nullptr});
  return Status::Ok();
}

Status GgufWriter::add_tensor_lazy(std::string name, GgmlType type, std::vector<int64_t> ne,
                                   std::function<Status(std::vector<uint8_t>&)> produce) {
  PLM_TRY(size_t nbytes, tensor_bytes(name, type, ne));
  tensors_.push_back({std::move(name), type, std::move(ne), nbytes, {}, std::move(produce)});
  return Status::Ok();
}

namespace {
struct Buffer {
  std::vector<uint8_t> bytes;
  template <class T>
  void pod(T v) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void value(const GgufValue& v) {
    switch (v.type) {
      case GgufType::UINT8: pod(static_cast<uint8_t>(v.u)); break;
      case GgufType::INT8: pod(static_cast<int8_t>(v.i)); break;
      case GgufType::UINT16: pod(static_cast<uint16_t>(v.u)); break;
      case GgufType::INT16: pod(static_cast<int16_t>(v.i)); break;
      case GgufType::UINT32: pod(static_cast<uint32_t>(v.u)); break;
      case GgufType::INT32: pod(static_cast<int32_t>(v.i)); break;
      case GgufType::UINT64: pod(v.u); break;
      case GgufType::INT64: pod(v.i); break;
      case GgufType::FLOAT32: pod(static_cast<float>(v.f)); break;
      case GgufType::FLOAT64: pod(v.f); break;
      case GgufType::BOOL: pod(static_cast<uint8_t>(v.u ? 1 : 0)); break;
      case GgufType::STRING: str(v.str); break;
      case GgufType::ARRAY:
        pod(static_cast<uint32_t>(v.elem_type));
        pod<uint64_t>(v.arr.size());
        for (const auto& e : v.arr) value(e);
        break;
    }
  }
};
}  // namespace

Status GgufWriter::check_metadata() const {
  for (const auto& kv : kv_)
    if (kv.second.type == GgufType::ARRAY)
      for (const auto& e : kv.second.arr)
        if (e.type != kv.second.elem_type) return Error("metadata '" + kv.first + "': array elements of mixed types");
  return Status::Ok();
}

std::vector<uint8_t> GgufWriter::header() const {
  Buffer head;
  head.pod(kGgufMagic);
  head.pod<uint32_t>(3);
  head.pod<uint64_t>(tensors_.size());
  head.pod<uint64_t>(kv_.size());
  for (const auto& kv : kv_) {
    head.str(kv.first);
    head.pod(static_cast<uint32_t>(kv.second.type));
    head.value(kv.second);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    head.str(t.name);
    head.pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) head.pod<uint64_t>(static_cast<uint64_t>(d));
    head.pod(static_cast<uint32_t>(t.type));
    head.pod<uint64_t>(offset);
    offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  head.bytes.resize((head.bytes.size() + alignment_ - 1) / alignment_ * alignment_, 0);
  return std::move(head.bytes);
}

Status GgufWriter::emit(const std::function<Status(const uint8_t*, size_t)>& sink) const {
  PLM_CHECK(check_metadata());
  const std::vector<uint8_t> head = header();
  PLM_CHECK(sink(head.data(), head.size()));
  static const std::vector<uint8_t> zeros(4096, 0);
  std::vector<uint8_t> produced;
  for (const auto& t : tensors_) {
    std::span<const uint8_t> bytes = t.data;
    if (t.produce) {
      produced.clear();
      Status s = t.produce(produced);
      if (!s.ok()) return s.error().with_context("tensor '" + t.name + "'");
      if (produced.size() != t.nbytes)
        return Error("tensor '" + t.name + "': producer gave " + std::to_string(produced.size()) + " bytes, expected " +
                     std::to_string(t.nbytes));
      bytes = produced;
    }
    PLM_CHECK(sink(bytes.data(), bytes.size()));
    size_t pad = static_cast<size_t>((alignment_ - t.nbytes % alignment_) % alignment_);
    while (pad > 0) {
      const size_t k = pad < zeros.size() ? pad : zeros.size();
      PLM_CHECK(sink(zeros.data(), k));
      pad -= k;
    }
  }
  return Status::Ok();
}

Status GgufWriter::write(const std::string& path) const {
  PLM_TRY(AtomicFile out, AtomicFile::create(path));
  Status s = emit([&](const uint8_t* p, size_t n) { return out.write(p, n); });
  if (!s.ok()) return s.error().with_context(path);
  return out.commit();
}

Expected<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  std::vector<uint8_t> bytes;
  PLM_CHECK(emit([&](const uint8_t* p, size_t n) {
    bytes.insert(bytes.end(), p, p + n);
    return Status::Ok();
  }));
  return bytes;
}

}  // namespace pocketlm
