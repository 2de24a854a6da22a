#pragma once
// The tensor type table: ggml's type ids as stored in GGUF, with each type's block geometry. This is the
// single place the numbers live; block layouts themselves are in the per-family headers beside this file.
//
// Besides ggml's types the table has pocketlm-only ones (TypeTraits::pocketlm_only): formats no llama.cpp
// type has, which llama.cpp-based tools cannot read. Their ids are 1000 + the group size (Q4_0_G64 = 1064,
// Q4_0_G128 = 1128): far outside ggml's dense range (0..39 today, GGML_TYPE_COUNT grows by one per new type),
// so ggml will not reuse them, and a file holding one is refused by ggml as an invalid type rather than
// misread. They are never produced by a recipe, only by an explicit type or rule (docs/quantization.md).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pocketlm {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  // pocketlm-only: Q4_0's element rule with one f16 scale per 64 / 128 weights (formats/legacy.h).
  Q4_0_G64 = 1064,
  Q4_0_G128 = 1128,
};

struct TypeTraits {
  GgmlType type;
  std::string_view name;       // as llama.cpp prints it: "f32", "q4_K", ...
  int64_t block_size;          // elements per block
  size_t type_size;            // bytes per block
  bool can_dequantize;         // pocketlm has a reference dequantizer for it
  bool pocketlm_only = false;  // not a ggml type: llama.cpp-based tools cannot read a file holding it
};

// Traits of a raw type id read from a file; nullopt for ids ggml does not define (or has removed).
std::optional<TypeTraits> type_traits(uint32_t raw_type);
const TypeTraits& type_traits(GgmlType type);
std::optional<GgmlType> type_from_name(std::string_view name);  // case-insensitive: "q4_k", "Q4_K", "f16"
inline bool is_pocketlm_only(GgmlType type) { return type_traits(type).pocketlm_only; }

// Bytes of a row of n elements (n must be a multiple of the block size).
inline size_t row_size(GgmlType type, int64_t n) {
  const TypeTraits& t = type_traits(type);
  return static_cast<size_t>(n / t.block_size) * t.type_size;
}

}  // namespace pocketlm
