#pragma once
// Rescalings of a float model that leave its function unchanged, folded into the model's own tensors (AWQ,
// SmoothQuant-style migration). For a channel scale s over the input channels of a group of weights:
//   - the weights reading the channels get their columns multiplied by s (W' = W diag(s)),
//   - what produces the channels is divided by s: an RMSNorm's weight (g' = g / s; the norm's output is
//     x_hat * g, linear in g) or a linear's output rows (ffn_up's rows, whose outputs reach ffn_down through
//     the elementwise gate product, which is linear in the up branch).
// Gemma's RMSNorm multiplies by (1 + w) in the reference model; GGUF files store 1 + w already (the converter
// adds the 1), and pocketlm's and llama.cpp's loaders multiply by the stored value, so the stored value is
// what gets divided: no offset to handle at this level.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace pocketlm {

class GgufFile;
struct GgufTensor;
struct CalibStats;
struct InputStats;

struct WeightTransform {
  std::map<std::string, std::vector<float>> col_scale;  // weight name -> factor per column (input channel)
  std::map<std::string, std::vector<float>> row_scale;  // weight name -> factor per row (output channel)
  std::map<std::string, std::vector<float>> vec_scale;  // 1-D tensor (a norm weight) -> factor per element

  bool empty() const { return col_scale.empty() && row_scale.empty() && vec_scale.empty(); }
  bool touches(std::string_view name) const;
  const std::vector<float>* col(std::string_view name) const;
  // Multiplies the float rows of tensor `name` (n_rows rows of n_per_row) by its factors, in place.
  void apply(std::string_view name, float* rows, int64_t n_per_row, int64_t n_rows) const;
  // This transform followed by `next` (factors multiply).
  void compose(const WeightTransform& next);
};

// One folding site: the channels `weights` read (same input) and where their scale is folded back.
struct ScaleGroup {
  std::string source;                // "blk.3.attn_norm.weight" or "blk.3.ffn_up.weight"
  bool source_is_norm = true;        // false: the source's output rows are divided
  std::vector<std::string> weights;  // q, k, v | gate, up | down
};

// The groups of a llama-style block (llama, qwen, smollm, gemma: attn_norm -> Q, K, V; ffn_norm -> gate, up;
// ffn_up -> ffn_down when gate and up are separate tensors), where every named tensor exists, is 2-D and the
// norm is F32. Fused QKV / gate-up weights are left out (no group).
std::vector<ScaleGroup> scale_groups(const GgufFile& model);

// Sets the group's factors for channel scale s: columns of every weight times s, the source divided by s.
void set_group_scale(WeightTransform& t, const ScaleGroup& g, const std::vector<float>& s);

// SmoothQuant's migration (--smooth ALPHA): s_j = max|x_j|^alpha / max_i |W_ij|^(1 - alpha) over the group's
// weights (a channel never active or with zero weights keeps s = 1), for every group with statistics.
Expected<WeightTransform> smooth_transform(const GgufFile& model, const CalibStats& stats, double alpha);

// The first NaN or Inf in a float (F32 / F16 / BF16) tensor of `model`, as an error naming the file, the
// tensor and the element; run before calibrating, which would otherwise fail later with less to say.
Status check_finite_weights(const GgufFile& model);

// Any tensor's values as floats (F32 in place, others decoded).
std::vector<float> tensor_as_floats(const GgufTensor& t);

}  // namespace pocketlm
