#pragma once
// Synthetic models of real shapes: a llama-architecture GGUF with the dimensions of a real checkpoint,
// tensor types from a quantization recipe (quant/recipe.h), random but valid blocks and a real tokenizer
// copied from another GGUF. Speed and memory can then be measured at 1B–7B scale without the weights.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quant/recipe.h"
#include "util/error.h"

namespace pocketlm {

struct SynthShape {
  std::string name;          // "llama-1b"
  std::string reference;     // the checkpoint whose dims these are
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  double rope_freq_base = 10000.0;
  double rms_eps = 1e-5;
  bool tied_embeddings = true;  // no output.weight: the head reuses token_embd
};

// llama-1b (Llama-3.2-1B), llama-3b (Llama-3.2-3B), llama-7b (Llama-2-7B), smollm2-135m (SmolLM2-135M).
const std::vector<SynthShape>& synth_shapes();
Expected<SynthShape> find_synth_shape(std::string_view name);

struct SynthOptions {
  SynthShape shape;
  std::string recipe = "Q4_K_M";
  std::string tokenizer_from;  // a GGUF whose tokenizer.* metadata is copied (its vocabulary sets n_vocab)
  uint64_t seed = 1;
  bool progress = true;        // a Progress line on stderr while writing
};

struct SynthResult {
  std::vector<TensorPlan> plan;  // every tensor's type (fallbacks included)
  int64_t n_vocab = 0;
  int64_t n_params = 0;
  uint64_t file_bytes = 0;
};

// The tensor list (names and shapes in llama.cpp's order) of a shape with a vocabulary of n_vocab.
std::vector<RecipeTensor> synth_tensor_list(const SynthShape& shape, int64_t n_vocab);

// Writes the model atomically to `path`, tensor by tensor (memory stays at one tensor, not the file).
Expected<SynthResult> write_synthetic_model(const SynthOptions& opts, const std::string& path);

}  // namespace pocketlm
