#include "gguf/value.h"

#include <cstdio>
#include <limits>

namespace pocketlm {

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "uint8";
    case GgufType::INT8: return "int8";
    case GgufType::UINT16: return "uint16";
    case GgufType::INT16: return "int16";
    case GgufType::UINT32: return "uint32";
    case GgufType::INT32: return "int32";
    case GgufType::FLOAT32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "uint64";
    case GgufType::INT64: return "int64";
    case GgufType::FLOAT64: return "float64";
  }
  return "unknown";
}

bool gguf_type_valid(uint32_t raw) { return raw <= static_cast<uint32_t>(GgufType::FLOAT64); }

bool gguf_type_is_integer(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::UINT16:
    case GgufType::INT16:
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::UINT64:
    case GgufType::INT64: return true;
    default: return false;
  }
}

int64_t GgufValue::as_int() const {
  switch (type) {
    case GgufType::UINT8:
    case GgufType::UINT16:
    case GgufType::UINT32:
    case GgufType::UINT64:
      return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                            : static_cast<int64_t>(u);
    default: return i;
  }
}

GgufValue GgufValue::of_strings(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(of_string(s));
  return of_array(GgufType::STRING, std::move(items));
}
GgufValue GgufValue::of_f32s(const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(of_f32(x));
  return of_array(GgufType::FLOAT32, std::move(items));
}
GgufValue GgufValue::of_i32s(const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(of_i32(x));
  return of_array(GgufType::INT32, std::move(items));
}

std::string GgufValue::to_display(size_t max_items) const {
  char buf[64];
  switch (type) {
    case GgufType::UINT8:
    case GgufType::UINT16:
    case GgufType::UINT32:
    case GgufType::UINT64: return std::to_string(u);
    case GgufType::INT8:
    case GgufType::INT16:
    case GgufType::INT32:
    case GgufType::INT64: return std::to_string(i);
    case GgufType::FLOAT32:
    case GgufType::FLOAT64: std::snprintf(buf, sizeof buf, "%g", f); return buf;
    case GgufType::BOOL: return u ? "true" : "false";
    case GgufType::STRING: {
      std::string s = str.size() > 60 ? str.substr(0, 60) + "..." : str;
      std::string out = "\"";
      for (char c : s) {
        if (c == '\n')
          out += "\\n";
        else if (c == '"')
          out += "\\\"";
        else
          out += c;
      }
      return out + "\"";
    }
    case GgufType::ARRAY: {
      std::string out = std::string(gguf_type_name(elem_type)) + "[" + std::to_string(arr.size()) + "] [";
      for (size_t k = 0; k < arr.size() && k < max_items; ++k) out += (k ? ", " : "") + arr[k].to_display(max_items);
      if (arr.size() > max_items) out += ", ...";
      return out + "]";
    }
  }
  return "?";
}

}  // namespace pocketlm
