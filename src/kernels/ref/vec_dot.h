#pragma once
// Scalar reference dot products: one weight row against one activation row that was quantized to the
// weight's partner type ("vec_dot_type", ggml's pairing). These are the oracles for the SIMD kernels and,
// until those exist, what the model's matmul calls. Usage for y = W x:
//   const GgmlType at = vec_dot_type(W.type);
//   std::vector<uint8_t> xq(activation_row_size(W.type, n));   // once, reused across rows
//   quantize_activations(at, x, xq.data(), n);
//   for (row r) y[r] = vec_dot(W.type, n, W.row(r), xq.data());
#include <cstddef>
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm {

// True for the weight types with a reference dot: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K,
// and the pocketlm-only Q4_0_G64, Q4_0_G128.
bool has_vec_dot(GgmlType weight_type);

// The activation type a weight type is dotted with: F32->F32, F16->F16, BF16->BF16, Q4_0/Q5_0/Q8_0->Q8_0,
// Q4_1/Q5_1->Q8_1, Q2_K..Q6_K->Q8_K; Q4_0_G64/Q4_0_G128->Q8_0 (one activation block per 32-element part).
// Asserts has_vec_dot(weight_type).
GgmlType vec_dot_type(GgmlType weight_type);

// Bytes of one activation row of n elements for dotting with `weight_type` rows.
size_t activation_row_size(GgmlType weight_type, int64_t n);

// Converts n floats into a row of `act_type` (one of F32, F16, BF16, Q8_0, Q8_1, Q8_K) at dst, with the
// rounding of ggml's reference quantizers. n must be a multiple of the block size.
void quantize_activations(GgmlType act_type, const float* x, void* dst, int64_t n);

// Dot of one weight row of `weight_type` with an activation row of vec_dot_type(weight_type), n elements.
float vec_dot(GgmlType weight_type, int64_t n, const void* w_row, const void* act_row);

// The same dot as a function pointer, so a matmul can pick it once per tensor instead of once per row.
using VecDotFn = float (*)(int64_t n, const void* w_row, const void* act_row);
VecDotFn vec_dot_fn(GgmlType weight_type);

}  // namespace pocketlm
