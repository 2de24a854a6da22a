#include "gguf/reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "formats/dequantize.h"

namespace pocketlm {

std::string GgufTensor::shape_string() const {
  std::string s = "[";
  for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
  return s + "]";
}

// Reads the header, metadata and tensor infos with a bounds-checked cursor. Every error carries the file
// name, what was being read and the byte offset where it started.
class GgufParser {
 public:
  explicit GgufParser(std::shared_ptr<MappedFile> file) : f_(std::move(file)) {}

  Expected<GgufFile> parse() {
    GgufFile out;
    out.file_ = f_;
    uint32_t magic = 0;
    PLM_CHECK(read_pod(magic, "magic"));
    if (magic != kGgufMagic) {
      char got[5] = {};
      std::memcpy(got, &magic, 4);
      for (char& c : got)
        if (c && (c < 32 || c > 126)) c = '?';
      return fail(0, "magic", "not a GGUF file (expected \"GGUF\", found \"" + std::string(got, 4) + "\")");
    }
    PLM_CHECK(read_pod(out.version_, "version"));
    if (out.version_ == 1) return fail(4, "version", "GGUF version 1 is not supported (only 2 and 3)");
    if (out.version_ != 2 && out.version_ != 3) {
      if ((out.version_ & 0xFFFF) == 0) return fail(4, "version", "big-endian GGUF files are not supported");
      return fail(4, "version", "unsupported GGUF version " + std::to_string(out.version_) + " (expected 2 or 3)");
    }
    uint64_t n_tensors = 0, n_kv = 0;
    PLM_CHECK(read_pod(n_tensors, "tensor_count"));
    PLM_CHECK(read_pod(n_kv, "metadata_kv_count"));
    // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8+4+8+4+8.
    if (n_kv > remaining() / 13)
      return fail(16, "metadata_kv_count", "count " + std::to_string(n_kv) + " cannot fit in the file");
    if (n_tensors > remaining() / 32)
      return fail(8, "tensor_count", "count " + std::to_string(n_tensors) + " cannot fit in the file");

    out.kv_.reserve(n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
      const size_t at = pos_;
      std::string key;
      PLM_CHECK(read_string(key, "metadata key #" + std::to_string(k)));
      if (key.empty()) return fail(at, "metadata key #" + std::to_string(k), "empty key");
      uint32_t raw_type = 0;
      PLM_CHECK(read_pod(raw_type, "type of '" + key + "'"));
      GgufValue v;
      PLM_CHECK(read_value(v, raw_type, "'" + key + "'", 0));
      if (out.kv_index_.count(key)) return fail(at, "metadata key '" + key + "'", "duplicate key");
      out.kv_index_.emplace(key, out.kv_.size());
      out.kv_.emplace_back(std::move(key), std::move(v));
    }

    if (const GgufValue* a = out.find("general.alignment")) {
      if (a->type != GgufType::UINT32)
        return fail(0, "general.alignment", "must be uint32, is " + std::string(gguf_type_name(a->type)));
      if (a->u == 0 || (a->u & (a->u - 1)) != 0)
        return fail(0, "general.alignment", "must be a power of two, is " + std::to_string(a->u));
      out.alignment_ = a->u;
    }

    out.tensors_.reserve(n_tensors);
    for (uint64_t t = 0; t < n_tensors; ++t) {
      const size_t at = pos_;
      GgufTensor ti;
      const std::string what = "tensor #" + std::to_string(t);
      PLM_CHECK(read_string(ti.name, what + " name"));
      const std::string tw = "tensor '" + ti.name + "'";
      if (ti.name.empty()) return fail(at, what, "empty tensor name");
      if (ti.name.size() > 256) return fail(at, tw, "name longer than 256 bytes");
      uint32_t n_dims = 0;
      PLM_CHECK(read_pod(n_dims, tw + " n_dims"));
      if (n_dims < 1 || n_dims > kGgufMaxDims)
        return fail(pos_ - 4, tw + " n_dims",
                    "must be 1.." + std::to_string(kGgufMaxDims) + ", is " + std::to_string(n_dims));
      ti.n_dims = static_cast<int>(n_dims);
      int64_t n_el = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        uint64_t ne = 0;
        PLM_CHECK(read_pod(ne, tw + " ne[" + std::to_string(d) + "]"));
        if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          return fail(pos_ - 8, tw + " ne[" + std::to_string(d) + "]", "invalid dimension " + std::to_string(ne));
        ti.ne[d] = static_cast<int64_t>(ne);
        if (n_el > std::numeric_limits<int64_t>::max() / ti.ne[d])
          return fail(pos_ - 8, tw + " shape", "element count overflows int64");
        n_el *= ti.ne[d];
      }
      uint32_t raw_type = 0;
      const size_t type_at = pos_;
      PLM_CHECK(read_pod(raw_type, tw + " type"));
      auto traits = type_traits(raw_type);
      if (!traits) return fail(type_at, tw + " type", "unknown tensor type id " + std::to_string(raw_type));
      ti.type = traits->type;
      if (ti.ne[0] % traits->block_size != 0)
        return fail(type_at, tw,
                    "row length " + std::to_string(ti.ne[0]) + " is not a multiple of " + std::string(traits->name) +
                        "'s block size " + std::to_string(traits->block_size));
      const uint64_t blocks = static_cast<uint64_t>(n_el / traits->block_size);
      if (blocks > std::numeric_limits<uint64_t>::max() / traits->type_size)
        return fail(type_at, tw, "byte size overflows");
      const uint64_t nbytes = blocks * traits->type_size;
      if (nbytes > f_->size())
        return fail(type_at, tw,
                    "needs " + std::to_string(nbytes) + " bytes, more than the whole file (" +
                        std::to_string(f_->size()) + ")");
      ti.nbytes = static_cast<size_t>(nbytes);
      PLM_CHECK(read_pod(ti.offset, tw + " offset"));
      if (ti.offset % out.alignment_ != 0)
        return fail(
            pos_ - 8, tw + " offset",
            std::to_string(ti.offset) + " is not a multiple of the alignment " + std::to_string(out.alignment_));
      if (out.tensor_index_.count(ti.name)) return fail(at, tw, "duplicate tensor name");
      out.tensor_index_.emplace(ti.name, out.tensors_.size());
      out.tensors_.push_back(std::move(ti));
    }

    // The data section starts at the next multiple of the alignment.
    uint64_t data = (pos_ + out.alignment_ - 1) / out.alignment_ * out.alignment_;
    if (n_tensors > 0 && data > f_->size())
      return fail(pos_, "data section", "file ends before the tensor data (truncated?)");
    out.data_offset_ = data;
    const uint64_t data_size = f_->size() >= data ? f_->size() - data : 0;

    std::vector<size_t> order(out.tensors_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return out.tensors_[a].offset < out.tensors_[b].offset; });
    for (size_t k = 0; k < order.size(); ++k) {
      GgufTensor& t = out.tensors_[order[k]];
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        return fail(data + t.offset, "tensor '" + t.name + "' data",
                    "extends past the end of the file (offset " + std::to_string(t.offset) + " + " +
                        std::to_string(t.nbytes) + " bytes > data section of " + std::to_string(data_size) +
                        " bytes; truncated file?)");
      if (k + 1 < order.size()) {
        const GgufTensor& next = out.tensors_[order[k + 1]];
        if (t.offset + t.nbytes > next.offset)
          return fail(data + next.offset, "tensor '" + next.name + "' data", "overlaps tensor '" + t.name + "'");
      }
      t.data = f_->data() + data + t.offset;
    }
    return out;
  }

 private:
  size_t remaining() const { return f_->size() - pos_; }

  Error fail(uint64_t offset, const std::string& field, const std::string& problem) const {
    return Error(f_->path() + ": " + field + " at byte " + std::to_string(offset) + ": " + problem);
  }

  template <class T>
  Status read_pod(T& v, const std::string& field) {
    if (remaining() < sizeof(T)) return fail(pos_, field, "unexpected end of file (truncated)");
    std::memcpy(&v, f_->data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status read_string(std::string& s, const std::string& field) {
    const size_t at = pos_;
    uint64_t len = 0;
    PLM_CHECK(read_pod(len, field + " length"));
    if (len > remaining()) return fail(at, field, "string length " + std::to_string(len) + " exceeds the file");
    s.assign(reinterpret_cast<const char*>(f_->data() + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::Ok();
  }

  static size_t min_size(GgufType t) {
    switch (t) {
      case GgufType::UINT8:
      case GgufType::INT8:
      case GgufType::BOOL: return 1;
      case GgufType::UINT16:
      case GgufType::INT16: return 2;
      case GgufType::UINT32:
      case GgufType::INT32:
      case GgufType::FLOAT32: return 4;
      case GgufType::STRING: return 8;
      case GgufType::ARRAY: return 12;
      default: return 8;
    }
  }

  Status read_value(GgufValue& v, uint32_t raw_type, const std::string& field, int depth) {
    if (!gguf_type_valid(raw_type))
      return fail(pos_ - 4, field, "unknown metadata value type " + std::to_string(raw_type));
    v.type = static_cast<GgufType>(raw_type);
    switch (v.type) {
      case GgufType::UINT8: {
        uint8_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.u = x;
        break;
      }
      case GgufType::INT8: {
        int8_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.i = x;
        break;
      }
      case GgufType::UINT16: {
        uint16_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.u = x;
        break;
      }
      case GgufType::INT16: {
        int16_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.i = x;
        break;
      }
      case GgufType::UINT32: {
        uint32_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.u = x;
        break;
      }
      case GgufType::INT32: {
        int32_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.i = x;
        break;
      }
      case GgufType::UINT64: {
        uint64_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.u = x;
        break;
      }
      case GgufType::INT64: {
        int64_t x = 0;
        PLM_CHECK(read_pod(x, field));
        v.i = x;
        break;
      }
      case GgufType::FLOAT32: {
        float x = 0;
        PLM_CHECK(read_pod(x, field));
        v.f = x;
        break;
      }
      case GgufType::FLOAT64: {
        double x = 0;
        PLM_CHECK(read_pod(x, field));
        v.f = x;
        break;
      }
      case GgufType::BOOL: {
        uint8_t x = 0;
        PLM_CHECK(read_pod(x, field));
        if (x > 1) return fail(pos_ - 1, field, "bool value " + std::to_string(x) + " is neither 0 nor 1");
        v.u = x;
        break;
      }
      case GgufType::STRING: PLM_CHECK(read_string(v.str, field)); break;
      case GgufType::ARRAY: {
        if (depth >= 8) return fail(pos_, field, "arrays nested deeper than 8 levels");
        const size_t at = pos_;
        uint32_t elem = 0;
        uint64_t count = 0;
        PLM_CHECK(read_pod(elem, field + " element type"));
        PLM_CHECK(read_pod(count, field + " element count"));
        if (!gguf_type_valid(elem)) return fail(at, field, "unknown array element type " + std::to_string(elem));
        v.elem_type = static_cast<GgufType>(elem);
        if (count > remaining() / min_size(v.elem_type))
          return fail(at, field,
                      "array of " + std::to_string(count) + " " + std::string(gguf_type_name(v.elem_type)) +
                          " cannot fit in the file");
        v.arr.resize(static_cast<size_t>(count));
        for (uint64_t k = 0; k < count; ++k)
          PLM_CHECK(read_value(v.arr[k], elem, field + "[" + std::to_string(k) + "]", depth + 1));
        break;
      }
    }
    return Status::Ok();
  }

  std::shared_ptr<MappedFile> f_;
  size_t pos_ = 0;
};

Expected<GgufFile> GgufFile::open(const std::string& path) {
  PLM_TRY(auto file, MappedFile::open(path));
  return parse(std::move(file));
}

Expected<GgufFile> GgufFile::parse(std::shared_ptr<MappedFile> file) { return GgufParser(std::move(file)).parse(); }

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
Error key_error(const GgufFile& f, std::string_view key, const std::string& problem) {
  return Error(f.path() + ": metadata '" + std::string(key) + "': " + problem);
}
Error type_error(const GgufFile& f, std::string_view key, const GgufValue& v, const char* want) {
  std::string got(gguf_type_name(v.type));
  if (v.type == GgufType::ARRAY) got += " of " + std::string(gguf_type_name(v.elem_type));
  return key_error(f, key, std::string("expected ") + want + ", found " + got);
}
}  // namespace

Expected<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (v->type != GgufType::STRING) return type_error(*this, key, *v, "string");
  return v->str;
}

Expected<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (!v->is_integer()) return type_error(*this, key, *v, "an integer");
  return v->as_int();
}

Expected<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (v->type == GgufType::FLOAT32 || v->type == GgufType::FLOAT64) return v->f;
  if (v->is_integer()) return static_cast<double>(v->as_int());
  return type_error(*this, key, *v, "a float");
}

Expected<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (v->type != GgufType::BOOL) return type_error(*this, key, *v, "bool");
  return v->u != 0;
}

Expected<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING)
    return type_error(*this, key, *v, "array of string");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) out.push_back(e.str);
  return out;
}

Expected<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (v->type != GgufType::ARRAY || (v->elem_type != GgufType::FLOAT32 && v->elem_type != GgufType::FLOAT64))
    return type_error(*this, key, *v, "array of float32");
  std::vector<float> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) out.push_back(static_cast<float>(e.f));
  return out;
}

Expected<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return key_error(*this, key, "missing");
  if (v->type != GgufType::ARRAY || !gguf_type_is_integer(v->elem_type))
    return type_error(*this, key, *v, "array of integers");
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) out.push_back(e.as_int());
  return out;
}

Expected<int64_t> GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  return has(key) ? get_int(key) : Expected<int64_t>(fallback);
}
Expected<double> GgufFile::get_float_or(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : Expected<double>(fallback);
}
Expected<std::string> GgufFile::get_string_or(std::string_view key, std::string fallback) const {
  return has(key) ? get_string(key) : Expected<std::string>(std::move(fallback));
}
Expected<bool> GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  return has(key) ? get_bool(key) : Expected<bool>(fallback);
}

std::vector<float> tensor_to_f32(const GgufTensor& t) {
  const int64_t k = t.ne[0], rows = t.n_rows();
  const size_t rb = row_size(t.type, k);
  std::vector<float> out(static_cast<size_t>(k * rows));
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(t.type, t.data + static_cast<size_t>(r) * rb, &out[static_cast<size_t>(r * k)], k);
  return out;
}

}  // namespace pocketlm
