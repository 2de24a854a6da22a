#include "formats/ggml_type.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <string>

namespace pocketlm {
namespace {
// Block geometry per ggml's definitions (ggml.h / ggml-common.h): facts of the format.
constexpr std::array kTypes = {
    TypeTraits{GgmlType::F32, "f32", 1, 4, true},
    TypeTraits{GgmlType::F16, "f16", 1, 2, true},
    TypeTraits{GgmlType::Q4_0, "q4_0", 32, 18, true},
    TypeTraits{GgmlType::Q4_1, "q4_1", 32, 20, true},
    TypeTraits{GgmlType::Q5_0, "q5_0", 32, 22, true},
    TypeTraits{GgmlType::Q5_1, "q5_1", 32, 24, true},
    TypeTraits{GgmlType::Q8_0, "q8_0", 32, 34, true},
    TypeTraits{GgmlType::Q8_1, "q8_1", 32, 36, true},
    TypeTraits{GgmlType::Q2_K, "q2_K", 256, 84, true},
    TypeTraits{GgmlType::Q3_K, "q3_K", 256, 110, true},
    TypeTraits{GgmlType::Q4_K, "q4_K", 256, 144, true},
    TypeTraits{GgmlType::Q5_K, "q5_K", 256, 176, true},
    TypeTraits{GgmlType::Q6_K, "q6_K", 256, 210, true},
    TypeTraits{GgmlType::Q8_K, "q8_K", 256, 292, true},
    TypeTraits{GgmlType::IQ2_XXS, "iq2_xxs", 256, 66, false},
    TypeTraits{GgmlType::IQ2_XS, "iq2_xs", 256, 74, false},
    TypeTraits{GgmlType::IQ3_XXS, "iq3_xxs", 256, 98, false},
    TypeTraits{GgmlType::IQ1_S, "iq1_s", 256, 50, false},
    TypeTraits{GgmlType::IQ4_NL, "iq4_nl", 32, 18, true},
    TypeTraits{GgmlType::IQ3_S, "iq3_s", 256, 110, false},
    TypeTraits{GgmlType::IQ2_S, "iq2_s", 256, 82, false},
    TypeTraits{GgmlType::IQ4_XS, "iq4_xs", 256, 136, true},
    TypeTraits{GgmlType::I8, "i8", 1, 1, false},
    TypeTraits{GgmlType::I16, "i16", 1, 2, false},
    TypeTraits{GgmlType::I32, "i32", 1, 4, false},
    TypeTraits{GgmlType::I64, "i64", 1, 8, false},
    TypeTraits{GgmlType::F64, "f64", 1, 8, false},
    TypeTraits{GgmlType::IQ1_M, "iq1_m", 256, 56, false},
    TypeTraits{GgmlType::BF16, "bf16", 1, 2, true},
    TypeTraits{GgmlType::TQ1_0, "tq1_0", 256, 54, false},
    TypeTraits{GgmlType::TQ2_0, "tq2_0", 256, 66, false},
    TypeTraits{GgmlType::MXFP4, "mxfp4", 32, 17, false},
    // pocketlm-only (ggml_type.h): f16 d + G/2 bytes of nibbles per block of G.
    TypeTraits{GgmlType::Q4_0_G64, "q4_0_g64", 64, 34, true, true},
    TypeTraits{GgmlType::Q4_0_G128, "q4_0_g128", 128, 66, true, true},
};
}  // namespace

std::optional<TypeTraits> type_traits(uint32_t raw_type) {
  for (const auto& t : kTypes)
    if (static_cast<uint32_t>(t.type) == raw_type) return t;
  return std::nullopt;
}

const TypeTraits& type_traits(GgmlType type) {
  for (const auto& t : kTypes)
    if (t.type == type) return t;
  assert(false && "GgmlType missing from the table");
  return kTypes[0];
}

std::optional<GgmlType> type_from_name(std::string_view name) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
  };
  const std::string want = lower(name);
  for (const auto& t : kTypes)
    if (lower(t.name) == want) return t.type;
  return std::nullopt;
}

}  // namespace pocketlm
