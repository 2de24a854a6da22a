#pragma once
// One entry point to turn a row of any supported tensor type back into float32.
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm {

// Decodes n elements of `type` from src into dst. n must be a multiple of the type's block size and the
// type must have can_dequantize set in the type table (asserted). src must be aligned to the block struct
// (2 bytes for f16/bf16/q*, 4 for f32/q8_K), which GGUF's tensor alignment guarantees for whole rows.
// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS, and the
// pocketlm-only Q4_0_G64, Q4_0_G128.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

}  // namespace pocketlm
