#pragma once
// GGUF metadata values: the 13 value types of the format, arrays (nested to any depth) included.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pocketlm {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufType t);
bool gguf_type_valid(uint32_t raw);
bool gguf_type_is_integer(GgufType t);

// One metadata value. Strings own their bytes (they are small compared with tensors, and owning them lets
// the writer build values from scratch). Arrays hold their elements, all of `elem_type`.
struct GgufValue {
  GgufType type = GgufType::UINT32;
  uint64_t u = 0;                         // UINT8..UINT64 and BOOL
  int64_t i = 0;                          // INT8..INT64
  double f = 0;                           // FLOAT32, FLOAT64
  std::string str;                        // STRING
  GgufType elem_type = GgufType::UINT32;  // ARRAY
  std::vector<GgufValue> arr;             // ARRAY

  static GgufValue of_u8(uint8_t v) { return uint_of(GgufType::UINT8, v); }
  static GgufValue of_u16(uint16_t v) { return uint_of(GgufType::UINT16, v); }
  static GgufValue of_u32(uint32_t v) { return uint_of(GgufType::UINT32, v); }
  static GgufValue of_u64(uint64_t v) { return uint_of(GgufType::UINT64, v); }
  static GgufValue of_i8(int8_t v) { return int_of(GgufType::INT8, v); }
  static GgufValue of_i16(int16_t v) { return int_of(GgufType::INT16, v); }
  static GgufValue of_i32(int32_t v) { return int_of(GgufType::INT32, v); }
  static GgufValue of_i64(int64_t v) { return int_of(GgufType::INT64, v); }
  static GgufValue of_f32(float v) {
    GgufValue x;
    x.type = GgufType::FLOAT32;
    x.f = v;
    return x;
  }
  static GgufValue of_f64(double v) {
    GgufValue x;
    x.type = GgufType::FLOAT64;
    x.f = v;
    return x;
  }
  static GgufValue of_bool(bool v) {
    GgufValue x;
    x.type = GgufType::BOOL;
    x.u = v ? 1 : 0;
    return x;
  }
  static GgufValue of_string(std::string v) {
    GgufValue x;
    x.type = GgufType::STRING;
    x.str = std::move(v);
    return x;
  }
  static GgufValue of_array(GgufType elem, std::vector<GgufValue> items) {
    GgufValue x;
    x.type = GgufType::ARRAY;
    x.elem_type = elem;
    x.arr = std::move(items);
    return x;
  }
  static GgufValue of_strings(const std::vector<std::string>& v);
  static GgufValue of_f32s(const std::vector<float>& v);
  static GgufValue of_i32s(const std::vector<int32_t>& v);

  bool is_integer() const { return gguf_type_is_integer(type); }
  // Integer value of any integer type (BOOL excluded), as int64 (UINT64 above INT64_MAX saturates).
  int64_t as_int() const;
  std::string to_display(size_t max_items = 8) const;  // for `pocketlm inspect`

 private:
  static GgufValue uint_of(GgufType t, uint64_t v) {
    GgufValue x;
    x.type = t;
    x.u = v;
    return x;
  }
  static GgufValue int_of(GgufType t, int64_t v) {
    GgufValue x;
    x.type = t;
    x.i = v;
    return x;
  }
};

}  // namespace pocketlm
