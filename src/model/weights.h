#pragma once
// Weight views: pointers to tensors inside the mapped GGUF (no copies). bind() checks that every tensor the
// architecture needs is present, has the expected shape and a type pocketlm can compute with.
#include <array>
#include <vector>

#include "gguf/reader.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "util/error.h"

namespace pocketlm {

struct LayerWeights {
  const GgufTensor* attn_norm = nullptr;
  const GgufTensor* wqkv = nullptr;  // phi3: Q, K and V rows in one matrix (then wq/wk/wv are null)
  const GgufTensor* wq = nullptr;
  const GgufTensor* wk = nullptr;
  const GgufTensor* wv = nullptr;
  const GgufTensor* wo = nullptr;
  const GgufTensor* ffn_norm = nullptr;
  const GgufTensor* ffn_gate = nullptr;
  const GgufTensor* ffn_up = nullptr;
  const GgufTensor* ffn_down = nullptr;
  // Optional biases (qwen2's Q/K/V; any Llama-block file may carry them), f32, null when absent. With a fused
  // QKV matrix, bqkv is its bias (or bq/bk/bv separately).
  const GgufTensor* bqkv = nullptr;
  const GgufTensor* bq = nullptr;
  const GgufTensor* bk = nullptr;
  const GgufTensor* bv = nullptr;
  const GgufTensor* bo = nullptr;
  // qwen3/gemma3: RMSNorm of each query / key head; gemma2/3: the norms after attention and FFN.
  const GgufTensor* attn_q_norm = nullptr;
  const GgufTensor* attn_k_norm = nullptr;
  const GgufTensor* post_attn_norm = nullptr;
  const GgufTensor* post_ffn_norm = nullptr;

  // The outlier branch of each matrix (`pocketlm quantize --outliers K`; k == 0: none), read from the
  // pocketlm-only tensors `<weight base>.outlier_w` (f16 [K, n_out]) and `.outlier_idx` (i32 [K]).
  // Matrices that read one input (Q/K/V, gate/up) normally share their channels (the quantizer picks them per
  // input); when they do not, matmul_many multiplies them one at a time.
  OutlierColumns wqkv_side, wq_side, wk_side, wv_side, wo_side, ffn_gate_side, ffn_up_side, ffn_down_side;

  // Every tensor of the layer (the absent ones as null).
  std::array<const GgufTensor*, 19> all() const {
    return {attn_norm, wqkv, wq, wk, wv, wo,          ffn_norm,    ffn_gate,       ffn_up,       ffn_down,
            bqkv,      bq,   bk, bv, bo, attn_q_norm, attn_k_norm, post_attn_norm, post_ffn_norm};
  }
};

struct ModelWeights {
  const GgufTensor* token_embd = nullptr;
  const GgufTensor* output_norm = nullptr;
  const GgufTensor* output = nullptr;  // == token_embd when the embeddings are tied
  std::vector<LayerWeights> layers;
  // RoPE frequency factors (rope_dim / 2 floats dividing the angles), null when absent: Llama 3.x's
  // rope_freqs.weight, or LongRoPE's short and long factors (Phi-3), chosen by the context length.
  const GgufTensor* rope_freqs = nullptr;
  const GgufTensor* rope_short = nullptr;
  const GgufTensor* rope_long = nullptr;
  // The outlier branches' side tensors (outlier_w and outlier_idx of every matrix that has one), for sizes.
  std::vector<const GgufTensor*> outlier_tensors;
  int64_t outlier_k = 0;  // the largest K of any matrix (0: no outlier branch)

  // The factors a context of n_ctx positions uses (ModelConfig::n_ctx_orig decides short or long), or null.
  const float* rope_factors(const ModelConfig& c, int64_t n_ctx) const;

  static Expected<ModelWeights> bind(const GgufFile& f, const ModelConfig& c);
  size_t total_bytes() const;
};

}  // namespace pocketlm
