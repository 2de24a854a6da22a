#pragma once
// GPTQ (Frantar et al., 2022) on the target format's own grid. For a weight W (rows = outputs, columns =
// inputs) and the Gram matrix of its calibration inputs (H = 2 X X^T up to a factor that cancels), columns
// are quantized left to right; each column's rounding error, divided by the diagonal of the inverse-Hessian
// factor, is fed into the columns not yet quantized, so later columns compensate for earlier ones.
//
//   - damping: H + damp * mean(diag H) * I (dead channels, diag 0, get diag 1);
//   - U: the upper Cholesky factor of H^-1 (H^-1 = U^T U), computed as J L^-1 J with L the Cholesky factor of
//     J H J (J reverses the order): one factorization and one triangular inverse;
//   - lazy blocks: the feedback inside a block of `lazy_block` columns is applied column by column, the rest
//     of the row once per block (the same arithmetic, fewer passes over memory);
//   - the grid: when the scan reaches the first column of one of the format's blocks (32 values for the
//     legacy types, a 256-value super-block for the k-quants), that block's scales (and k-quant sub-block
//     scales and mins) are chosen by the format's own encoder from the *error-updated* weights, weighted by
//     the importance (diag H); then each column of the block is rounded onto that grid (formats/block_grid.h)
//     with error feedback, and the integers are packed into the block with the scales unchanged. The output is
//     a standard block of the type. Static groups in the natural column order: no act-order permutation, so
//     nothing about the file changes.
// Rows are independent given U, so they are split over threads.
#include <cstdint>
#include <vector>

#include "formats/ggml_type.h"
#include "formats/quant_search.h"
#include "util/error.h"

namespace pocketlm {

class ThreadPool;

struct GptqOptions {
  double damp = 0.1;     // relative damping (GPTQ's percdamp; 0.1 measured better than 0.01 on SmolLM2)
  int lazy_block = 128;  // raised to the format's block when that is larger
  QuantSearch search = QuantSearch::fast;  // the encoder's scale search for each block
};

// The upper factor U (n x n, row-major, lower part zero) of (H + damping)^-1 = U^T U, from the symmetric
// n x n Gram matrix H. An error when H (after damping) is not positive definite or holds a non-finite value.
// `pool` (nullable) shares out the factorization's row updates.
Expected<std::vector<float>> gptq_inverse_factor(const float* H, int64_t n, double damp, ThreadPool* pool = nullptr);

// Encodes `rows` rows of n floats (W, row-major) into `type` (has_block_grid(type)) with GPTQ's error
// feedback through U (from gptq_inverse_factor). `importance` (n values, nullable) steers the encoder's choice
// of each block's scales (the diagonal of H is the natural choice). `out` holds row_size(type, n) * rows bytes.
Status gptq_quantize(GgmlType type, const float* W, int64_t rows, int64_t n, const float* U, const float* importance,
                     const GptqOptions& o, void* out, ThreadPool* pool);

// The output error of a reconstruction: sum over rows of (w - w_hat)^T H (w - w_hat), i.e. ||(W - W_hat) X||^2
// for H = X X^T. rows x n row-major; H n x n.
double layer_output_error(const float* W, const float* W_hat, int64_t rows, int64_t n, const float* H);

}  // namespace pocketlm
