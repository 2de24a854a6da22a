#pragma once
// Scalar reference for the quantized KV cache rows (formats/kv_types.h: one f16 scale per token and KV head,
// then head_dim int8 (q8) or head_dim / 2 bytes of nibbles (q4)). The oracle the SIMD paths (simd/kv_rows.h)
// are tested against, and the scalar path's table entries (kernel_table.h kv_gemm / kv_weighted_rows).
//
//   quantize q8: d = amax / 127 stored as f16; q = round(x / d) (halves away from zero) with the stored d,
//                clamped to [-127, 127]; |x - d q| <= d / 2 wherever d is a normal f16 (amax >= 0.0078).
//   quantize q4: m = the value of largest magnitude (the first on ties), d = m / -8 stored as f16;
//                nibble = clamp(round(x / d) + 8, 0, 15): m itself maps to nibble 0, values of m's opposite
//                sign beyond 7 |d| clamp to 15, everything else is within |d| / 2.
//   An all-zero row (or one whose scale underflows f16) stores d = 0 and zero quants. A scale beyond the
//   largest f16 saturates to 65504 (its values clamp). Inputs are expected finite; NaN values quantize to
//   a clamped quant without undefined behaviour, and their scores carry no meaning.
//
//   K . Q (GemmFn, k = head_dim): K rows q8 or q4, queries q8 rows; out = kv_score(exact int32 dot, d_k,
//   d_q) (kernels/kv_score.h), bit-identical on every path. q4 needs head_dim a multiple of 32.
//   P . V (WeightedRowsFn): out[c * out_stride + i] += (p[c * p_stride + j] * d_j) * q_j[i] over rows j with
//   p != 0; SIMD paths use an FMA per term (agree within float rounding).
#include <cstddef>
#include <cstdint>

#include "formats/kv_types.h"
#include "kernels/kernel_table.h"

namespace pocketlm::ref {

// Quantizes head_dim floats into one row of kv_row_bytes(t, head_dim) bytes; t is Q8 or Q4.
void quantize_kv_row(KvType t, const float* x, uint8_t* dst, int64_t head_dim);

// The inverse: head_dim floats, d * q (q8) or d * (nibble - 8) (q4).
void dequantize_kv_row(KvType t, const uint8_t* src, float* dst, int64_t head_dim);

// Exact integer dot of a K row (q8 or q4) with a q8 query row over head_dim values (the scales excluded).
int32_t kv_row_dot(kernels::KvRow k_type, int64_t head_dim, const uint8_t* k_row, const uint8_t* q_row);

// The scalar table's entries.
kernels::GemmFn kv_gemm(kernels::KvRow k_type);
kernels::WeightedRowsFn kv_weighted_rows(kernels::KvRow v_type);

}  // namespace pocketlm::ref
