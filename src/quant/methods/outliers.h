#pragma once
// The outlier branch (`pocketlm quantize --outliers K`, docs/quantization.md "Outlier branch"): per matrix that
// takes activations (attn q/k/v/qkv/output, ffn gate/up/down), the K input channels with the largest mean
// squared calibration activation keep their columns of W in f16 as a small dense side matrix; those columns are
// zeroed in W, which is then quantized as usual (kernels/matmul.h OutlierColumns runs it). The side data is
// stored as two pocketlm-only tensors next to the matrix:
//   <base>.outlier_w    f16 [K, n_out]  (ggml order: row r of the matrix's outputs holds its K side weights)
//   <base>.outlier_idx  i32 [K]         (the channels, strictly increasing)
// where <base> is the weight's name without ".weight" (blk.3.ffn_down.weight -> blk.3.ffn_down.outlier_w), and
// the file carries the metadata key pocketlm.outliers (u32 K). llama.cpp refuses such a file (its tensor count
// does not match the architecture's).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/methods/calib_stats.h"

namespace pocketlm {

inline constexpr const char* kPocketlmOutliersKey = "pocketlm.outliers";

// Whether `weight` (a tensor name) is a matrix that may get an outlier branch.
bool takes_outliers(std::string_view weight);
// The side tensors' names for a weight ("blk.0.attn_q.weight" -> "blk.0.attn_q.outlier_w" / ".outlier_idx").
std::string outlier_w_name(std::string_view weight);
std::string outlier_idx_name(std::string_view weight);
// Whether a tensor name is one of the side tensors.
bool is_outlier_tensor(std::string_view name);

// The k channels of `st` with the largest mean x^2, ascending. `col` (nullable, st.n values): a transform
// that multiplied column j of the weight by col[j] (AWQ, --smooth) divides its input by col[j], so the
// statistic is mean x^2 / col[j]^2. Ties go to the lower channel.
std::vector<int32_t> select_outlier_channels(const InputStats& st, int64_t k, const std::vector<float>* col);

// Moves columns idx of w (n_rows rows of n_in floats) into side (n_rows rows of idx.size() f16 values) and
// sets them to 0 in w.
void split_outlier_columns(float* w, int64_t n_rows, int64_t n_in, std::span<const int32_t> idx, uint16_t* side);

}  // namespace pocketlm
