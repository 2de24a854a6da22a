#pragma once
// KV cache element types and the byte layout of one cached row. A "row" is one token's K (or V) for one KV
// head: head_dim values.
//   f32: head_dim floats.                     f16: head_dim IEEE halves.
//   q8 : f16 scale d, then head_dim int8 q;   value = d * q, d = amax / 127 (one scale per token and head).
//   q4 : f16 scale d, then head_dim / 2 bytes; value = d * (nibble - 8). Within each group of 32 values,
//        byte j holds value j in its low nibble and value j + 16 in its high nibble (ggml's Q4_0 order);
//        d = m / -8 where m is the value of largest magnitude, as Q4_0 does. head_dim must be a multiple of 32.
// The quantized rows are pocketlm's own (llama.cpp's q8_0/q4_0 caches carry one scale per 32 values); the
// query is quantized to a q8 row for the K . Q products, whose int8 sums are exact.
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/error.h"

namespace pocketlm {

enum class KvType { F32, F16, Q8, Q4 };

inline const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::Q8: return "q8";
    case KvType::Q4: return "q4";
  }
  return "?";
}

// "f32" | "f16" | "q8" | "q4" (also "q8_0" / "q4_0", llama.cpp's spellings, mapped to ours).
inline Expected<KvType> parse_kv_type(const std::string& s) {
  if (s == "f32") return KvType::F32;
  if (s == "f16") return KvType::F16;
  if (s == "q8" || s == "q8_0") return KvType::Q8;
  if (s == "q4" || s == "q4_0") return KvType::Q4;
  return Error("unknown KV cache type '" + s + "' (expected f32, f16, q8 or q4)");
}

inline bool kv_type_quantized(KvType t) { return t == KvType::Q8 || t == KvType::Q4; }

// Bytes of one row (one token, one KV head) of head_dim values.
inline size_t kv_row_bytes(KvType t, int64_t head_dim) {
  const auto hd = static_cast<size_t>(head_dim);
  switch (t) {
    case KvType::F32: return 4 * hd;
    case KvType::F16: return 2 * hd;
    case KvType::Q8: return 2 + hd;
    case KvType::Q4: return 2 + hd / 2;
  }
  return 0;
}

// Bytes of the scales inside one row (reported separately in memory reports).
inline size_t kv_row_scale_bytes(KvType t) { return kv_type_quantized(t) ? 2 : 0; }

}  // namespace pocketlm
