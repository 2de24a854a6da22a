#pragma once
// ModelConfig: every hyper-parameter the forward pass needs, read once from GGUF metadata.
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "util/error.h"

namespace pocketlm {

enum class RopeType { Normal, NeoX };  // Normal: pairs (2i, 2i+1); NeoX: pairs (i, i + d/2)

// Which forward pass runs an architecture (model/arch/forward.cpp): the Llama-shaped block (pre-norms, SwiGLU;
// llama, mistral, qwen2, qwen3, phi3, smollm3) or the Gemma block (scaled embeddings, post-norms, GeGLU;
// gemma2, gemma3). What differs inside a pass is data: the flags below and the tensors present.
enum class ArchBlock { Llama, Gemma };

struct ModelConfig {
  std::string arch;  // general.architecture
  std::string name;  // general.name
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t head_dim = 0;    // key_length (defaults to n_embd / n_head)
  int64_t head_dim_v = 0;  // value_length
  float norm_eps = 1e-5f;  // attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
  int64_t rope_dim = 0;          // rope.dimension_count (defaults to head_dim)
  RopeType rope_type = RopeType::Normal;
  ArchBlock block = ArchBlock::Llama;
  bool qk_norm = false;        // per-head RMSNorm of Q and K before RoPE (qwen3, gemma3)
  bool post_norms = false;     // RMSNorm of the attention and FFN outputs before each residual add (gemma2/3)
  bool fused_gate_up = false;  // ffn_up holds [gate; up] (2 n_ff rows) and there is no ffn_gate (phi3)
  // RoPE multiplies cos and sin by this (LongRoPE's rope.scaling.attn_factor; 1 elsewhere).
  float rope_attn_factor = 1.0f;
  // rope.scaling.original_context_length (default n_ctx_train): a context longer than this uses LongRoPE's
  // long factors, otherwise the short ones.
  int64_t n_ctx_orig = 0;
  // smollm3: every no_rope_period-th layer (il + 1 divisible by it) skips RoPE; 0: every layer rotates.
  int64_t no_rope_period = 0;
  // Attention logit soft-cap c > 0 (gemma2): scores become c * tanh(score / c) before the softmax.
  float attn_softcap = 0.0f;
  bool tied_embeddings = false;  // no output.weight: the head reuses token_embd
  // Gemma-style scaling: the embedding rows are multiplied by embed_scale (sqrt(n_embd) for gemma3, 1 for
  // llama), each query by query_scale before K.Q (attention then applies no 1/sqrt(head_dim) of its own),
  // and a final logit soft-cap c > 0 maps logits to c * tanh(logit / c).
  float embed_scale = 1.0f;
  float query_scale = 0.0f;  // 0: the attention's usual 1/sqrt(head_dim)
  float final_logit_softcap = 0.0f;
  // Sliding-window attention: a local layer's token at position p sees positions (p - sliding_window, p].
  int64_t sliding_window = 0;           // attention.sliding_window (0: no local layers)
  std::vector<uint8_t> layer_is_local;  // per layer, 1 for a sliding-window layer; empty: all global
  // RoPE of the sliding-window layers (gemma3: base 10000, no scaling, while global layers use rope.freq_base).
  float rope_freq_base_local = 10000.0f;
  float rope_freq_scale_local = 1.0f;

  // The window of layer il in tokens, 0 for a global layer.
  int64_t window(int64_t il) const {
    return il >= 0 && static_cast<size_t>(il) < layer_is_local.size() && layer_is_local[static_cast<size_t>(il)]
               ? sliding_window
               : 0;
  }

  float rope_base(int64_t il) const { return window(il) > 0 ? rope_freq_base_local : rope_freq_base; }
  float rope_scale(int64_t il) const { return window(il) > 0 ? rope_freq_scale_local : rope_freq_scale; }
  bool rope_on(int64_t il) const { return no_rope_period <= 0 || (il + 1) % no_rope_period != 0; }

  static Expected<ModelConfig> from_gguf(const GgufFile& f);
  // The architectures from_gguf accepts, comma-separated.
  static std::string supported_architectures();
  std::string summary() const;
};

}  // namespace pocketlm
