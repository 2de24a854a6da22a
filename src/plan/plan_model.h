#pragma once
// PlanModel: what the planner knows about a model before anything is built: its hyper-parameters and the
// type and size of every tensor, from a GGUF's tensor table (as stored, or with a recipe / rules applied
// through the quantizer's dry-run plan, nothing written) or from a synthetic shape (bench/synthetic_model's
// shapes, or a custom one given by its dimensions).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/ggml_type.h"
#include "model/config.h"
#include "util/error.h"

namespace pocketlm {

struct PlanTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  int64_t row_width = 0;  // ne[0]
  int64_t n_elements = 0;
  uint64_t bytes = 0;
};

struct PlanModel {
  std::string source;  // the GGUF path or the shape spec
  std::string recipe;  // the recipe / type applied, "" when the tensors are as stored
  ModelConfig config;
  std::vector<PlanTensor> tensors;
  uint64_t metadata_bytes = 0;  // the GGUF header and metadata (the tokenizer's arrays): mapped and read at load

  uint64_t weight_bytes() const;                       // every tensor
  std::map<GgmlType, uint64_t> bytes_by_type() const;  // every tensor, by type
  const PlanTensor* tensor(const std::string& name) const;
  // Bytes a decoded token reads from the weights: every tensor except the token embedding, of which one
  // row (unless the embedding is also the output head, then all of it).
  uint64_t decode_weight_bytes() const;
  // Weights a token is multiplied by (matrices only; the embedding only when it is the head): 2 ops each.
  int64_t matmul_params() const;
  // Of decode_weight_bytes, the bytes of types the decode GEMVs read in the row-interleaved x16 layout
  // (kernels/interleave.h: q4_0, q4_K, q6_K); the rest are read row by row, at a lower efficiency.
  uint64_t decode_weight_bytes_x16() const;
  // Of those, the output head's (token_embd when tied): a prompt batch runs it for its last token only.
  int64_t head_params() const;
};

// What to do to the stored tensors: nothing, a recipe or type (quantize's TYPE|RECIPE), rules (quantize
// --rules, on top of the recipe or of the stored types).
struct QuantizeOptions;
struct PlanRecipe {
  std::string target;      // "" | "Q4_K_M" | "q8_0" ...
  std::string rules_path;  // "" | rules.yaml
  // The quantizer's whole options (target, rules, embedding / head overrides, imatrix), used instead of
  // target and rules_path when set: the plan is then exactly what quantize_model would write (tune's filter).
  const QuantizeOptions* options = nullptr;
};

Expected<PlanModel> plan_model_from_gguf(const std::string& path, const PlanRecipe& recipe = {});

// A model not built yet, from the shape the quantizer plans on and its configuration (tune's pruned candidates:
// the pruned shape, quantized by `options`); metadata_bytes: the GGUF header and metadata it will have.
struct QuantizeShape;
Expected<PlanModel> plan_model_from_quantize_shape(const QuantizeShape& shape, const ModelConfig& config,
                                                   uint64_t metadata_bytes, const QuantizeOptions& options);

// A shape: a bench/synthetic_model shape name ("llama-7b"), optionally followed by overrides, or only
// key=value pairs, comma-separated: layers, heads, kv_heads, head_dim, embd, ff, vocab, ctx (trained
// context), params (with K/M/B/T: ff is then solved so the model has that many parameters), tied (0/1).
// The recipe is required (a shape has no stored types).
Expected<PlanModel> plan_model_from_shape(const std::string& spec, const PlanRecipe& recipe);

}  // namespace pocketlm
