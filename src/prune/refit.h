#pragma once
// The repair after removing input columns of a linear layer (ffn_down after FFN channels go, attn_output
// after heads go), without training: the kept columns are refit by least squares so the layer's output over
// the calibration activations stays as close as possible to the unpruned output. For each output row w,
//   w' = argmin_v sum_t (w . x_t - v . x_t[S])^2  =>  v (C_SS + lambda I) = w C_:S,   C = sum_t x_t x_t^T,
// solved in double precision with one Cholesky factorisation of C_SS + lambda I shared by every row;
// lambda = ridge * mean(diag C_SS) keeps the system positive definite when kept channels are (nearly) dead
// or collinear.
#include <cstdint>
#include <span>
#include <vector>

#include "util/error.h"

namespace pocketlm {

// w: `rows` rows of n floats (the layer's GGUF rows: one output each); gram: n x n (symmetric); keep: the
// kept column indices, increasing. Returns rows x keep.size() floats. An error when the kept Gram block is
// not positive definite even with the ridge (no calibration activation reached those columns).
// With `cross` (rows x n: sum_t y_t x_t^T), the target of row r becomes w_r . x_t + y_t[r]: the layer also
// learns to add y (the repair of dropped blocks folds what they added to the residual stream into the block
// before them).
Expected<std::vector<float>> refit_columns(std::span<const float> w, int64_t rows, int64_t n,
                                           std::span<const float> gram, std::span<const int64_t> keep,
                                           double ridge = 1e-3, std::span<const float> cross = {});

}  // namespace pocketlm
