#pragma once
// Column-interleaved activations for the packed GEMMs (simd/packed_gemm.h): activation rows (q8_0 or q8_K,
// already quantized) regrouped kPackCols at a time so that one 64-byte load holds 4 consecutive quants of
// each of the 16 columns. A packed kernel then broadcasts 4 weight bytes to every lane and does one int8
// dot-product instruction for 16 outputs, so the float epilogue (convert, scale, accumulate) is paid once
// per 16 outputs instead of once per output. Weights stay in their GGUF layout: nothing is repacked, no
// memory is added beyond this scratch (about the size of the q8 rows it is made from).
//
// A group holds columns [16 g, 16 g + 16); a group's blocks follow each other; a partial last group is
// padded with zero columns (quants, scale and sums 0), whose outputs the kernels never store.
#include <cstddef>
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm::kernels {

inline constexpr int kPackCols = 16;

// One q8_0 block (32 quants) of 16 columns.
struct PackedQ8_0 {
  int8_t qs[8][kPackCols][4];  // qs[j][c][i] = quant 4 j + i of column c
  float d[kPackCols];          // column scales (q8_0's f16 d, widened)
  int32_t sum[kPackCols];      // sum of the column's 32 quants
};
static_assert(sizeof(PackedQ8_0) == 640);

// One q8_K super-block (256 quants) of 16 columns.
struct PackedQ8_K {
  int8_t qs[64][kPackCols][4];     // qs[j][c][i] = quant 4 j + i of column c
  float d[kPackCols];              // column scales
  int16_t bsums[8][kPackCols][2];  // bsums[p][c][i] = q8_K bsum 2 p + i of column c (sums of 16 quants)
};
static_assert(sizeof(PackedQ8_K) == 4672);

// Bytes of one packed group of k elements (k a multiple of the type's block), or 0 when `act_type`
// (an activation type: q8_0, q8_K) has no packed layout.
size_t packed_group_bytes(GgmlType act_type, int64_t k);

// Number of groups for n columns.
constexpr int64_t packed_groups(int64_t n_cols) { return (n_cols + kPackCols - 1) / kPackCols; }

// Packs group g of the n_cols activation rows at `rows` (each `row_stride` bytes, in act_type) into
// dst (packed_group_bytes(act_type, k) bytes).
void pack_activation_group(GgmlType act_type, const uint8_t* rows, size_t row_stride, int64_t k, int64_t n_cols,
                           int64_t g, uint8_t* dst);

}  // namespace pocketlm::kernels
