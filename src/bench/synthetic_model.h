#pragma once
// Synthetic models of real shapes: a GGUF of the architecture and dimensions of a real checkpoint,
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
  std::string name;       // "llama-1b"
  std::string reference;  // the checkpoint whose dims these are
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  double rope_freq_base = 10000.0;
  double rms_eps = 1e-5;
  bool tied_embeddings = true;  // no output.weight: the head reuses token_embd
  // The architecture's layout (tensors and metadata as llama.cpp's converter writes them): llama (with
  // rope_freqs.weight when llama3_rope), qwen2 (Q/K/V biases), qwen3 (Q/K norms), phi3 (fused QKV and gate/up,
  // LongRoPE factors), gemma2 (post-norms, soft-caps, windows).
  std::string arch = "llama";
  int64_t head_dim = 0;  // 0: n_embd / n_head
  bool llama3_rope = false;
};

// llama-1b (Llama-3.2-1B), llama-3b (Llama-3.2-3B), llama-7b (Llama-2-7B), smollm2-135m (SmolLM2-135M), and
// the real shapes of the families issue 21 runs: llama-3.2-1b, llama-3.2-3b, qwen2.5-0.5b, qwen2.5-1.5b,
// qwen3-0.6b, qwen3-1.7b, phi-3.5-mini, gemma-2-2b.
const std::vector<SynthShape>& synth_shapes();
Expected<SynthShape> find_synth_shape(std::string_view name);

struct SynthOptions {
  SynthShape shape;
  std::string recipe = "Q4_K_M";
  std::string tokenizer_from;  // a GGUF whose tokenizer.* metadata is copied (its vocabulary sets n_vocab)
  uint64_t seed = 1;
  bool progress = true;  // a Progress line on stderr while writing
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
