#pragma once
// Named quantization recipes (llama.cpp's "ftypes": Q4_K_M, Q4_0, ...) as a pure planning function: given a
// recipe and a model's tensor list, the type each tensor gets. The per-tensor rules are llama.cpp's (so a
// plan agrees with what `llama-quantize` writes): the output head and tied embeddings get more bits, attn_v
// and ffn_down get more bits on the "more bits" layers of the _M mixes, 1-D tensors (norms) stay as they
// are, and a row width that is not a multiple of a type's block falls back to the nearest type whose block
// fits (recorded, with the reason, so tools can say so). No weights are read or written here.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml_type.h"
#include "gguf/reader.h"
#include "util/error.h"

namespace pocketlm {

enum class RecipeId {
  F16,
  Q8_0,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q2_K,
  Q3_K_S,
  Q3_K_M,
  Q4_K_S,
  Q4_K_M,
  Q5_K_S,
  Q5_K_M,
  Q6_K,
};

struct QuantRecipe {
  RecipeId id;
  std::string_view name;     // "Q4_K_M"
  uint32_t ftype;            // llama.cpp's general.file_type value (LLAMA_FTYPE_MOSTLY_*)
  GgmlType base;             // the type most weight matrices get
  std::string_view summary;  // one line for --help and docs
};

// Case-insensitive ("q4_k_m" works). The error lists the known names.
Expected<QuantRecipe> find_recipe(std::string_view name);
const std::vector<QuantRecipe>& all_recipes();

// What the plan needs to know about the model (from its GGUF metadata).
struct RecipeModelInfo {
  std::string arch = "llama";  // general.architecture
  int64_t n_layer = 0;         // {arch}.block_count
  int64_t n_head = 0;          // {arch}.attention.head_count
  int64_t n_head_kv = 0;       // {arch}.attention.head_count_kv (0: = n_head)
  int64_t n_expert = 0;        // {arch}.expert_count (0 or 1: dense)
  bool has_imatrix = false;    // an importance matrix will be used (changes Q4_0/Q5_0 ffn_down)
};

struct RecipeTensor {
  std::string name;
  std::vector<int64_t> ne;        // ggml order: ne[0] is the row width
  GgmlType type = GgmlType::F32;  // the source type (kept by tensors that are not quantized)
};

struct TensorPlan {
  std::string name;
  GgmlType type;                   // what the tensor becomes
  std::optional<GgmlType> wanted;  // set when the rules asked for a type whose block does not fit the row
  std::string reason;              // why `type` differs from the recipe's base type ("" when it does not)
  bool fallback() const { return wanted.has_value(); }
};

// The plan, one entry per tensor in the given order. As in llama.cpp, the "more bits" layers are chosen by
// counting attn_v / ffn_down tensors in llama.cpp's visiting order (by layer number, then name), not the
// file's (which is often blk.0, blk.1, blk.10, ...).
Expected<std::vector<TensorPlan>> plan_recipe(const QuantRecipe& recipe, const RecipeModelInfo& model,
                                              std::span<const RecipeTensor> tensors);

// A single type for every weight llama.cpp would quantize (llama-quantize --pure): 1-D tensors, norms and the
// other tensors recipes never touch keep their type; a row width the type's block does not divide falls back
// as in plan_recipe (q4_K -> q5_0, q6_K -> q8_0, iq4_xs -> iq4_nl, ...; f16 when no 32-element block fits
// either), recorded with the reason. `type` must be a type quantize_rows can write.
std::vector<TensorPlan> plan_uniform(GgmlType type, std::span<const RecipeTensor> tensors);

// Whether llama.cpp quantizes this tensor at all (2-D or more, a ".weight", not a norm, router, ...).
bool recipe_allows_quantization(const RecipeTensor& t);

// The type llama.cpp falls back to when `type`'s block does not divide a row of `width` values (the type
// itself when it fits; f16 when no block of the family fits either). The pocketlm-only group sizes step
// down: q4_0_g128 -> q4_0_g64 -> q4_0 -> f16.
GgmlType recipe_fallback_type(GgmlType type, int64_t width);

// Reads the model info and tensor list of a GGUF file (errors name the file and key).
Expected<RecipeModelInfo> recipe_model_info(const GgufFile& f);
std::vector<RecipeTensor> recipe_tensors(const GgufFile& f);

// "use_more_bits" layers of llama.cpp's _M mixes: the first and last eighth and every third in between.
bool recipe_more_bits_layer(int64_t i_layer, int64_t n_layer);

}  // namespace pocketlm
