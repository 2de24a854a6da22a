#pragma once
// Weight views: pointers to tensors inside the mapped GGUF (no copies). bind() checks that every tensor the
// architecture needs is present, has the expected shape and a type pocketlm can compute with.
#include <array>
#include <vector>

#include "gguf/reader.h"
#include "model/config.h"
#include "util/error.h"

namespace pocketlm {

struct LayerWeights {
  const GgufTensor* attn_norm = nullptr;
  const GgufTensor* wq = nullptr;
  const GgufTensor* wk = nullptr;
  const GgufTensor* wv = nullptr;
  const GgufTensor* wo = nullptr;
  const GgufTensor* ffn_norm = nullptr;
  const GgufTensor* ffn_gate = nullptr;
  const GgufTensor* ffn_up = nullptr;
  const GgufTensor* ffn_down = nullptr;
  // gemma3 only (null elsewhere): RMSNorm of each query / key head, and the norms after attention and FFN.
  const GgufTensor* attn_q_norm = nullptr;
  const GgufTensor* attn_k_norm = nullptr;
  const GgufTensor* post_attn_norm = nullptr;
  const GgufTensor* post_ffn_norm = nullptr;

  // Every tensor of the layer (the absent ones as null).
  std::array<const GgufTensor*, 13> all() const {
    return {attn_norm, wq, wk, wv, wo, ffn_norm, ffn_gate, ffn_up, ffn_down, attn_q_norm, attn_k_norm, post_attn_norm, post_ffn_norm};
  }
};

struct ModelWeights {
  const GgufTensor* token_embd = nullptr;
  const GgufTensor* output_norm = nullptr;
  const GgufTensor* output = nullptr;  // == token_embd when the embeddings are tied
  std::vector<LayerWeights> layers;

  static Expected<ModelWeights> bind(const GgufFile& f, const ModelConfig& c);
  size_t total_bytes() const;
};

}  // namespace pocketlm
