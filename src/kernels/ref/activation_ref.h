#pragma once
// Scalar oracle of the SIMD paths' activation quantizers (kernels/simd/activations.h). For q8_0 and q8_1 they
// use llama.cpp's x86 SIMD arithmetic, which differs from ggml's generic C (quantize_activations) in two
// rounding details: the multiplier is 127 / amax instead of 1 / (amax / 127), and halves round to even
// instead of away from zero. q8_K is the same as quantize_activations.
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm::ref {

void quantize_activations_simd_semantics(GgmlType act_type, const float* x, void* dst, int64_t n);

}  // namespace pocketlm::ref
