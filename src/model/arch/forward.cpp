#include "model/arch/forward.h"

#include <algorithm>
#include <cmath>

#include "kernels/matmul.h"
#include "model/arch/gemma.h"
#include "model/arch/llama.h"
#include "model/ops.h"

namespace pocketlm {

void ForwardScratch::reserve(const ModelConfig& c, int64_t n, int64_t n_ctx, int n_threads) {
  if (n <= max_batch && scores.size() >= static_cast<size_t>(n_ctx * n_threads)) return;
  const auto z = [](int64_t count) { return static_cast<size_t>(count); };
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  x.resize(z(n * c.n_embd));
  xn.resize(z(n * std::max(c.n_embd, q_dim)));
  q.resize(z(n * q_dim));
  k.resize(z(n * kv_dim));
  v.resize(z(n * kv_dim));
  att.resize(z(n * q_dim));
  att_out.resize(z(n * std::max(c.n_embd, q_dim)));
  gate.resize(z(n * c.n_ff));
  up.resize(z(n * c.n_ff));
  hidden.resize(z(n * c.n_ff));
  scores.resize(z((n_ctx + 2 * c.head_dim) * n_threads));
  max_batch = n;
}

void embed_tokens(const Model& model, std::span<const int32_t> tokens, ForwardScratch& s) {
  const ModelConfig& c = model.config();
  const int64_t d = c.n_embd;
  for (size_t t = 0; t < tokens.size(); ++t) {
    float* row = &s.x[t * static_cast<size_t>(d)];
    get_row(*model.weights().token_embd, tokens[t], row);
    if (c.embed_scale != 1.0f)
      for (int64_t i = 0; i < d; ++i) row[i] *= c.embed_scale;
  }
}

int64_t logit_rows(std::span<const SeqSlice> seqs) {
  int64_t rows = 0;
  for (const SeqSlice& q : seqs) rows += q.logits == Logits::All ? q.n : q.logits == Logits::Last ? 1 : 0;
  return rows;
}

void reserve_scratch(const ModelConfig& c, int64_t n, std::span<const SeqSlice> seqs, ForwardScratch& s,
                     int n_threads) {
  int64_t n_ctx = 0;
  for (const SeqSlice& q : seqs) n_ctx = std::max(n_ctx, q.kv->n_ctx());
  s.reserve(c, n, n_ctx, n_threads);
}

void output_logits(const Model& model, std::span<const SeqSlice> seqs, ForwardScratch& s, ThreadPool& pool) {
  const int64_t n_out = logit_rows(seqs);
  if (n_out == 0) return;
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t d = c.n_embd;
  const auto* out_norm = reinterpret_cast<const float*>(w.output_norm->data);
  int64_t row = 0, t0 = 0;
  for (const SeqSlice& q : seqs) {  // gather the rows asked for, normed, into xn
    const int64_t first = q.logits == Logits::All ? 0 : q.logits == Logits::Last ? q.n - 1 : q.n;
    for (int64_t t = t0 + first; t < t0 + q.n; ++t)
      ops::rms_norm(&s.x[t * d], out_norm, &s.xn[row++ * d], d, c.norm_eps);
    t0 += q.n;
  }
  s.logits.resize(static_cast<size_t>(n_out * c.n_vocab));
  matmul(*w.output, s.xn.data(), n_out, s.logits.data(), pool, s.act);
  if (c.final_logit_softcap > 0) ops::softcap(s.logits.data(), n_out * c.n_vocab, c.final_logit_softcap);
}

void add_inplace(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void norm_rows(const float* x, const GgufTensor& weight, float* out, int64_t n, int64_t width, float eps) {
  const auto* w = reinterpret_cast<const float*>(weight.data);
  for (int64_t r = 0; r < n; ++r) ops::rms_norm(x + r * width, w, out + r * width, width, eps);
}

namespace {

// rows[t * width + i] += bias[i]
void add_bias(float* rows, const GgufTensor* bias, int64_t n, int64_t width, int64_t offset = 0) {
  if (bias == nullptr) return;
  const float* b = reinterpret_cast<const float*>(bias->data) + offset;
  for (int64_t t = 0; t < n; ++t) add_inplace(rows + t * width, b, width);
}

void project_qkv(const ModelConfig& c, const LayerWeights& L, int64_t n, ForwardScratch& s, ThreadPool& pool) {
  const int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  if (L.wqkv) {  // rows [0, q_dim) are Q, then K, then V
    const MatmulTarget qkv[] = {{L.wqkv, 0, q_dim, s.q.data(), &L.wqkv_side},
                                {L.wqkv, q_dim, q_dim + kv_dim, s.k.data(), &L.wqkv_side},
                                {L.wqkv, q_dim + kv_dim, q_dim + 2 * kv_dim, s.v.data(), &L.wqkv_side}};
    matmul_many(qkv, s.xn.data(), n, pool, s.act);
    add_bias(s.q.data(), L.bqkv, n, q_dim);
    add_bias(s.k.data(), L.bqkv, n, kv_dim, q_dim);
    add_bias(s.v.data(), L.bqkv, n, kv_dim, q_dim + kv_dim);
  } else {
    const MatmulTarget qkv[] = {{L.wq, 0, q_dim, s.q.data(), &L.wq_side},
                                {L.wk, 0, kv_dim, s.k.data(), &L.wk_side},
                                {L.wv, 0, kv_dim, s.v.data(), &L.wv_side}};
    matmul_many(qkv, s.xn.data(), n, pool, s.act);
  }
  add_bias(s.q.data(), L.bq, n, q_dim);
  add_bias(s.k.data(), L.bk, n, kv_dim);
  add_bias(s.v.data(), L.bv, n, kv_dim);
  if (L.attn_q_norm) norm_rows(s.q.data(), *L.attn_q_norm, s.q.data(), n * c.n_head, c.head_dim, c.norm_eps);
  if (L.attn_k_norm) norm_rows(s.k.data(), *L.attn_k_norm, s.k.data(), n * c.n_head_kv, c.head_dim, c.norm_eps);
}

}  // namespace

void attention_block(const Model& model, int64_t l, std::span<const SeqSlice> seqs, int64_t n, ForwardScratch& s,
                     ThreadPool& pool) {
  const ModelConfig& c = model.config();
  const LayerWeights& L = model.weights().layers[static_cast<size_t>(l)];
  const int64_t hd = c.head_dim, q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
  project_qkv(c, L, n, s, pool);
  const bool neox = c.rope_type == RopeType::NeoX, rotate = c.rope_on(l);
  const float base = c.rope_base(l), fscale = c.rope_scale(l);
  // Queries that carry their scale need none from the attention.
  const float scale = c.query_scale > 0 ? 1.0f : 1.0f / std::sqrt(static_cast<float>(hd));
  int64_t t0 = 0;
  for (const SeqSlice& seq : seqs) {  // RoPE, the cache and attention are per sequence
    KvCache& kv = *seq.kv;
    const int64_t pos0 = seq.pos0;
    const float* factors = c.block == ArchBlock::Llama ? model.weights().rope_factors(c, kv.n_ctx()) : nullptr;
    for (int64_t t = t0; t < t0 + seq.n; ++t) {
      const int64_t pos = pos0 + t - t0;
      for (int64_t h = 0; h < c.n_head; ++h) {
        float* qh = &s.q[t * q_dim + h * hd];
        if (rotate) ops::rope(qh, c.rope_dim, pos, base, fscale, neox, factors, c.rope_attn_factor);
        if (c.query_scale > 0)  // after RoPE, as the references do it
          for (int64_t i = 0; i < hd; ++i) qh[i] *= c.query_scale;
      }
      if (rotate)
        for (int64_t h = 0; h < c.n_head_kv; ++h)
          ops::rope(&s.k[t * kv_dim + h * hd], c.rope_dim, pos, base, fscale, neox, factors, c.rope_attn_factor);
      kv.store(l, pos, &s.k[t * kv_dim], &s.v[t * kv_dim]);
    }
    attention(&s.q[t0 * q_dim], seq.n, pos0, l, kv, {c.n_head, c.n_head_kv, hd, c.attn_softcap}, scale,
              &s.att[t0 * q_dim], pool, s.attn);
    t0 += seq.n;
  }
  matmul(*L.wo, &L.wo_side, s.att.data(), n, s.att_out.data(), pool, s.act);
  add_bias(s.att_out.data(), L.bo, n, c.n_embd);
}

void ffn_block(const Model& model, int64_t l, int64_t n, ForwardScratch& s, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  const LayerWeights& L = model.weights().layers[static_cast<size_t>(l)];
  const MatmulTarget separate[] = {{L.ffn_gate, 0, c.n_ff, s.gate.data(), &L.ffn_gate_side},
                                   {L.ffn_up, 0, c.n_ff, s.up.data(), &L.ffn_up_side}};
  const MatmulTarget fused[] = {{L.ffn_up, 0, c.n_ff, s.gate.data(), &L.ffn_up_side},
                                {L.ffn_up, c.n_ff, 2 * c.n_ff, s.up.data(), &L.ffn_up_side}};
  matmul_many(L.ffn_gate ? separate : fused, s.xn.data(), n, pool, s.act);
  if (c.block == ArchBlock::Gemma)
    ops::geglu(s.gate.data(), s.up.data(), s.hidden.data(), n * c.n_ff);
  else
    ops::swiglu(s.gate.data(), s.up.data(), s.hidden.data(), n * c.n_ff);
  matmul(*L.ffn_down, &L.ffn_down_side, s.hidden.data(), n, s.att_out.data(), pool, s.act);
}

ForwardFn forward_for(const ModelConfig& c) { return c.block == ArchBlock::Gemma ? &gemma_forward : &llama_forward; }

}  // namespace pocketlm
