#pragma once
// Quantizing a whole GGUF model (`pocketlm quantize`): a plan (recipe or single type, then the user's rules
// and the token-embedding / output-head overrides, each tensor's type with the reason when it is not the
// recipe's), then the file, streamed tensor by tensor (read or dequantize -> quantize_rows -> the writer),
// with each tensor's reconstruction error measured on the way. The output is written atomically: after an
// error or a cancel no output file exists.
#include <atomic>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml_type.h"
#include "gguf/reader.h"
#include "quant/imatrix.h"
#include "quant/methods/gptq.h"
#include "quant/recipe.h"
#include "util/error.h"

namespace pocketlm {

struct CalibStats;
struct WeightTransform;

// One line of a rules file: tensors whose name the regex finds (std::regex_search, ECMAScript) get `type`.
struct QuantizeRule {
  std::string pattern;
  std::regex re;
  GgmlType type = GgmlType::F32;
  std::string where;  // "rules.json: rule 3" for messages
};

// Reads a rules file, JSON or YAML: a list of {pattern: <regex>, type: <type name>} objects (or an object
// {rules: [...]}), applied in order after the recipe, first match wins. A .yaml/.yml file is YAML, a .json
// file JSON; any other name is JSON when it parses as JSON, else YAML. Errors name the file, the rule
// (1-based; for YAML also the line) and the problem (a syntax error, a missing key, a bad regex with
// std::regex's reason, a type pocketlm cannot write).
Expected<std::vector<QuantizeRule>> read_quantize_rules(const std::string& path);
Expected<std::vector<QuantizeRule>> parse_quantize_rules(std::string_view json, const std::string& name);
Expected<std::vector<QuantizeRule>> parse_quantize_rules_yaml(std::string_view yaml, const std::string& name);
// One rule from its two strings; `where` prefixes errors ("rules.yaml:4: rule 2").
Expected<QuantizeRule> make_quantize_rule(const std::string& pattern, const std::string& type,
                                          const std::string& where);

struct QuantizeOptions {
  // A recipe name (Q4_K_M, Q8_0, ...: llama.cpp's mixes) or a type name (q4_K, iq4_nl, f16, ...: every weight
  // llama.cpp quantizes gets that type). A name that is both (Q8_0, Q4_0, ...) is the recipe, as in
  // llama-quantize; `pure` makes it the single type.
  std::string target;
  bool pure = false;
  std::optional<GgmlType> token_embedding_type;  // token_embd.weight (and per_layer_token_embd)
  std::optional<GgmlType> output_tensor_type;    // output.weight, or the embedding when it is tied to the head
  std::vector<QuantizeRule> rules;
  const Imatrix* imatrix = nullptr;  // validated against the model by plan_quantization
  std::string imatrix_path;          // recorded in the output's quantize.imatrix.file
  // Quantization methods that see the activations (quant/methods/, docs/quantization.md):
  // `transform` rescales the float weights before they are encoded and writes the norms it folds into (AWQ,
  // --smooth; the importance of a rescaled column is divided by its factor squared); with `gptq_stats`, every
  // weight with a Gram matrix there and a uniform-grid type is encoded by GPTQ (the rest as without it).
  const WeightTransform* transform = nullptr;
  const CalibStats* gptq_stats = nullptr;
  GptqOptions gptq;
  // The outlier branch (quant/methods/outliers.h): `outliers` (K, 1..256) side columns for every quantized
  // attn/ffn matrix, chosen from `outlier_stats` (the calibration statistics); 0: none.
  int64_t outliers = 0;
  const CalibStats* outlier_stats = nullptr;
  std::string method;       // recorded as quantize.method ("" : nothing recorded)
  std::string calibration;  // recorded as quantize.calibration (what the statistics came from)
  // The encoders' scale search (formats/quant_search.h): fast (the default), the exact sweep, or nearest (no
  // search: llama-quantize's plain rounding of the 32-value types; with no imatrix or method only).
  QuantSearch search = QuantSearch::fast;
  int n_threads = 0;                          // 0: physical cores
  bool progress = true;                       // a progress line on stderr
  const std::atomic<bool>* cancel = nullptr;  // set (e.g. by SIGINT) to stop: the error "interrupted"
};

struct QuantizeTensorPlan {
  std::string name;
  std::vector<int64_t> ne;  // ggml order
  GgmlType src_type = GgmlType::F32;
  GgmlType type = GgmlType::F32;
  std::string reason;       // why `type` is not the target's base type ("" when it is)
  bool fallback = false;    // the wanted type's block does not divide the row width
  bool quantize = false;    // false: the bytes are copied as they are (kept type)
  bool requantize = false;  // the source is already quantized (dequantized first: a second rounding)
  bool has_importance = false;
  bool transformed = false;          // rescaled by QuantizeOptions::transform (written even when the type is kept)
  bool gptq = false;                 // encoded by GPTQ
  uint64_t bytes = 0;                // in the output
  std::vector<int32_t> outlier_idx;  // the outlier branch's channels (empty: none)
  uint64_t outlier_bytes = 0;        // its side tensors' bytes (outlier_w + outlier_idx), not in `bytes`
  int64_t n_elements() const;
  double bits_per_weight() const;
};

struct QuantizePlan {
  std::string target;  // "Q4_K_M" (recipe) or "q4_K" (single type)
  bool is_recipe = false;
  GgmlType base = GgmlType::F32;
  uint32_t ftype = 0;                       // general.file_type of the output
  std::vector<QuantizeTensorPlan> tensors;  // in the input's order
  uint64_t src_bytes = 0, out_bytes = 0;    // tensor data only
  int64_t n_elements = 0;
  std::vector<std::string> warnings;  // requantized inputs, types pocketlm cannot run yet, ...
  int n_fallback() const;
  int64_t outliers = 0;  // K of the outlier branch (0: none)
  int n_outlier_matrices() const;
  // Names of the pocketlm-only types (ggml_type.h: q4_0_g64, q4_0_g128) the output holds, by type id; empty
  // when llama.cpp can read the output. Never produced by a recipe: only a single TYPE, a rule or a flag.
  std::vector<std::string> pocketlm_only_types() const;
};

// Metadata key of an output that holds pocketlm-only types: a string array of their names
// (QuantizePlan::pocketlm_only_types()), so a reader can tell why llama.cpp refuses the file.
inline constexpr const char* kPocketlmOnlyTypesKey = "pocketlm.only_types";

// The plan for `in`: errors for an unknown recipe/type, an imatrix that does not match the model (the first
// mismatch, from validate_imatrix), a rule or override whose type cannot hold a tensor's rows.
Expected<QuantizePlan> plan_quantization(const GgufFile& in, const QuantizeOptions& o);

// A model's shape as the quantizer plans it, without its data: a file's (recipe_model_info, recipe_tensors), or
// one not built yet (tune sizes a pruned model this way before pruning it).
struct QuantizeShape {
  std::string name;  // for messages (the file's path)
  RecipeModelInfo info;
  std::vector<RecipeTensor> tensors;
};
// The same plan for a shape: what plan_quantization(file, o) gives for a file of that shape, except that an
// importance matrix is only taken as present (its entries are not checked, and GPTQ is not planned).
Expected<QuantizePlan> plan_quantization(const QuantizeShape& in, const QuantizeOptions& o);

struct QuantizeTensorResult {
  std::string name;
  GgmlType type = GgmlType::F32;
  uint64_t bytes = 0;
  bool quantized = false;  // false: copied, no error to measure
  double rmse = 0;         // weighted RMSE of the reconstruction vs the input floats (importance-weighted
                           // when the tensor has an imatrix entry, else plain)
  double rel_rmse = 0;     // rmse / weighted RMS of the input
};

struct QuantizeResult {
  std::vector<QuantizeTensorResult> tensors;
  uint64_t file_bytes = 0;
  double seconds = 0;
};

// Writes `out_path` (atomically) following `plan`, made by plan_quantization from the same `in` and `o`.
Expected<QuantizeResult> quantize_model(const GgufFile& in, const QuantizePlan& plan, const QuantizeOptions& o,
                                        const std::string& out_path);

// Text tables for the CLI: the plan (--dry-run) and the results.
std::string format_quantize_plan(const QuantizePlan& plan);
std::string format_quantize_results(const QuantizePlan& plan, const QuantizeResult& r);

// llama.cpp's general.file_type for a model that is all `type` (LLAMA_FTYPE_MOSTLY_*; q4_K -> Q4_K_S's 14,
// q3_K -> Q3_K_S's 11, the pocketlm-only q4_0_g64/g128 -> Q4_0's 2 ...), nullopt for types with no such value.
std::optional<uint32_t> ftype_of_single_type(GgmlType type);

}  // namespace pocketlm
