#pragma once
// AWQ (Lin et al., 2023), on pocketlm's formats and encoders. For each scale group (weight_transform.h:
// attn_norm -> Q, K, V; ffn_norm -> gate, up; ffn_up -> ffn_down) the channel scale is
//   s_j = mean|x_j|^alpha, normalized so that max(s) * min(s) = 1,
// with alpha searched over a grid on [0, 1] for the least block output error
//   sum over the group's weights and a sample of their rows of (w - Q(w s) / s)^T H (w - Q(w s) / s),
// H = X X^T from the calibration statistics, Q the weight's planned type with the importance-weighted encoder
// (importance mean x^2 / s^2, as the quantizer will use it). alpha = 0 (no scaling) is on the grid, so a
// group is never made worse on this measure. The scales are folded exactly into the norm or the producing
// linear (WeightTransform): the float model computes the same function, and the file is a standard GGUF.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/ggml_type.h"
#include "formats/quant_search.h"
#include "quant/methods/weight_transform.h"
#include "util/error.h"

namespace pocketlm {

class GgufFile;
class ThreadPool;
struct CalibStats;

struct AwqOptions {
  int grid = 11;                           // alpha in {0, 1/(grid-1), ..., 1}
  int64_t search_rows = 64;                // rows of each weight sampled (evenly) for the search; <= 0: all
  QuantSearch search = QuantSearch::fast;  // the encoder's scale search when trying each alpha
};

struct AwqGroupResult {
  std::string source;
  double alpha = 0;
  double error_before = 0;  // output error with s = 1 (on the sampled rows)
  double error_after = 0;
};

// The types the weights get (the quantization plan's), by name; a weight whose type is not a block type (a
// float) makes its group skipped.
using WeightTypeFn = std::function<GgmlType(const std::string&)>;

// Searches every group with statistics and a Gram matrix. `base` (nullable) is a transform applied first (e.g.
// --smooth): the search sees the weights and statistics as they are after it, and the result includes it.
Expected<WeightTransform> awq_search(const GgufFile& model, const CalibStats& stats, const WeightTypeFn& type_of,
                                     const AwqOptions& o, const WeightTransform* base, ThreadPool& pool,
                                     std::vector<AwqGroupResult>* report = nullptr,
                                     const std::function<void()>& group_done = {});

}  // namespace pocketlm
