#pragma once
// What every architecture's forward pass shares: the scratch buffers, which logits to compute, and the
// lookup from general.architecture to the pass (forward_for).
#include <cstdint>
#include <span>
#include <vector>

#include "model/attention.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace pocketlm {

// Buffers reused across calls, sized for up to max_batch tokens.
struct ForwardScratch {
  std::vector<float> x, xn, q, k, v, att, att_out, gate, up, hidden, logits, scores;
  std::vector<uint8_t> act;  // quantized activations
  std::vector<AttentionScratch> attn;
  int64_t max_batch = 0;
  void reserve(const ModelConfig& c, int64_t n_tokens, int64_t n_ctx, int n_threads);
};

// Which logits a forward call computes for a sequence: none (a prompt batch before the last), the last
// token's, or all.
enum class Logits { None, Last, All };

// One sequence's part of a forward batch: its next n tokens, at positions pos0.., with their K/V written
// into (and attention reading from) its own cache. Several slices make a multi-sequence batch: the matrix
// products run once over every slice's rows (each weight read once per step, whatever the number of
// sequences), attention runs per slice over its own cache.
struct SeqSlice {
  KvCache* kv;
  int64_t pos0;
  int64_t n;
  Logits logits;
};
// Rows of logits a batch yields: per slice in order, 0, 1 or n rows.
int64_t logit_rows(std::span<const SeqSlice> seqs);

// Runs `tokens` (the slices' tokens one after the other: sum of n) through the model. Fills scratch.logits
// with the logits the slices ask for (n_vocab floats per row, slices in order).
using ForwardFn = void (*)(const Model& model, std::span<const int32_t> tokens, std::span<const SeqSlice> seqs,
                           ForwardScratch& s, ThreadPool& pool);

// Steps every architecture's pass shares.
// x (n tokens x n_embd) = the embedding rows of `tokens`, times c.embed_scale.
void embed_tokens(const Model& model, std::span<const int32_t> tokens, ForwardScratch& s);
// The final norm and the output head (soft-capped when c.final_logit_softcap > 0) over the tokens the slices
// ask for, into s.logits.
void output_logits(const Model& model, std::span<const SeqSlice> seqs, ForwardScratch& s, ThreadPool& pool);
// Sizes the scratch for a batch of n tokens over the slices' caches.
void reserve_scratch(const ModelConfig& c, int64_t n, std::span<const SeqSlice> seqs, ForwardScratch& s, int n_threads);
// a[i] += b[i]
void add_inplace(float* a, const float* b, int64_t n);
// out rows = RMSNorm(x rows) * weight, for n rows of `width` floats (out may be x).
void norm_rows(const float* x, const GgufTensor& weight, float* out, int64_t n, int64_t width, float eps);

// One attention block over s.xn (the normed input, the slices' tokens), each slice at its positions: Q, K, V
// projections (fused or separate, plus biases when the file has them), per-head Q/K norms when the layer has them, RoPE
// (with the file's frequency factors and attention factor; none on the layers c.rope_on excludes), the query scale, K/V
// into the cache, attention (windowed, soft-capped as the config says) and the output projection (plus bias) into
// s.att_out.
void attention_block(const Model& model, int64_t layer, std::span<const SeqSlice> seqs, int64_t n, ForwardScratch& s,
                     ThreadPool& pool);
// The gated FFN over s.xn into s.att_out: gate and up (separate or one fused ffn_up), SwiGLU for the Llama
// block and GeGLU for the Gemma block, then down.
void ffn_block(const Model& model, int64_t layer, int64_t n, ForwardScratch& s, ThreadPool& pool);

// The forward pass of c.arch (ModelConfig::from_gguf only accepts architectures that have one).
ForwardFn forward_for(const ModelConfig& c);

}  // namespace pocketlm
