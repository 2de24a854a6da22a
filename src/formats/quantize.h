#pragma once
// One entry point to encode float32 rows into any type pocketlm can write (the inverse of dequantize.h).
#include <cstddef>
#include <cstdint>

#include "formats/ggml_type.h"
#include "formats/quant_search.h"
#include "util/error.h"

namespace pocketlm {

class ThreadPool;

// Types quantize_rows can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_NL, IQ4_XS, and the pocketlm-only Q4_0_G64, Q4_0_G128 (ggml_type.h).
bool can_quantize(GgmlType type);

// Encodes n_rows rows of n_per_row floats from src into dst (row_size(type, n_per_row) bytes per row) and
// returns the bytes written. `importance` (nullable) holds n_per_row per-column weights shared by every row
// (an imatrix entry: mean squared activation of each input column); it steers the search of the quantized
// types (see docs/quantization.md) and is ignored by Q8_0 and the float types. Rows are split over `pool`
// (nullable: the calling thread does everything).
// Errors: a type that cannot be written, n_per_row not a multiple of the block size, a NaN or Inf input
// (naming the row and column), a negative or non-finite importance (naming the column). dst is unspecified
// after an error. `search`: the scale search of the quantized types (quant_search.h).
Expected<size_t> quantize_rows(GgmlType type, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                               const float* importance, ThreadPool* pool, QuantSearch search = QuantSearch::fast);

// Encodes one row (n a multiple of the block size, finite values, no checks).
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n, const float* importance,
                  QuantSearch search = QuantSearch::fast);

}  // namespace pocketlm
