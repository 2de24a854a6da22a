#include "model/arch/gemma3.h"

#include "kernels/matmul.h"
#include "model/attention.h"
#include "model/ops.h"

namespace pocketlm {

namespace {

// RMSNorm of each of n rows of `width` floats (stride `width`), in place.
void norm_rows(float* x, const GgufTensor& weight, int64_t n, int64_t width, float eps) {
  const auto* w = reinterpret_cast<const float*>(weight.data);
  for (int64_t r = 0; r < n; ++r) ops::rms_norm(x + r * width, w, x + r * width, width, eps);
}

}  // namespace

void gemma3_forward(const Model& model, std::span<const int32_t> tokens, int64_t pos0, Logits which, KvCache& kv,
                    ForwardScratch& s, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t d = c.n_embd, hd = c.head_dim, q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
  s.reserve(c, n, kv.n_ctx(), pool.size());
  embed_tokens(model, tokens, s);

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    for (int64_t t = 0; t < n; ++t)
      ops::rms_norm(&s.x[t * d], reinterpret_cast<const float*>(L.attn_norm->data), &s.xn[t * d], d, c.norm_eps);
    const MatmulTarget qkv[] = {{L.wq, 0, L.wq->ne[1], s.q.data()},
                                {L.wk, 0, L.wk->ne[1], s.k.data()},
                                {L.wv, 0, L.wv->ne[1], s.v.data()}};
    matmul_many(qkv, s.xn.data(), n, pool, s.act);
    norm_rows(s.q.data(), *L.attn_q_norm, n * c.n_head, hd, c.norm_eps);
    norm_rows(s.k.data(), *L.attn_k_norm, n * c.n_head_kv, hd, c.norm_eps);
    const float base = c.rope_base(l), fscale = c.rope_scale(l);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < c.n_head; ++h) {
        float* qh = &s.q[t * q_dim + h * hd];
        ops::rope(qh, c.rope_dim, pos0 + t, base, fscale, true);
        for (int64_t i = 0; i < hd; ++i) qh[i] *= c.query_scale;  // after RoPE, as the reference does it
      }
      for (int64_t h = 0; h < c.n_head_kv; ++h) ops::rope(&s.k[t * kv_dim + h * hd], c.rope_dim, pos0 + t, base, fscale, true);
      kv.store(l, pos0 + t, &s.k[t * kv_dim], &s.v[t * kv_dim]);
    }
    // The queries carry the whole 1/sqrt(query_pre_attn_scalar): the attention adds no scale of its own.
    attention(s.q.data(), n, pos0, l, kv, {c.n_head, c.n_head_kv, hd}, 1.0f, s.att.data(), pool, s.attn);
    matmul(*L.wo, s.att.data(), n, s.att_out.data(), pool, s.act);
    norm_rows(s.att_out.data(), *L.post_attn_norm, n, d, c.norm_eps);
    add_inplace(s.x.data(), s.att_out.data(), n * d);

    for (int64_t t = 0; t < n; ++t)
      ops::rms_norm(&s.x[t * d], reinterpret_cast<const float*>(L.ffn_norm->data), &s.xn[t * d], d, c.norm_eps);
    const MatmulTarget gate_up[] = {{L.ffn_gate, 0, L.ffn_gate->ne[1], s.gate.data()},
                                    {L.ffn_up, 0, L.ffn_up->ne[1], s.up.data()}};
    matmul_many(gate_up, s.xn.data(), n, pool, s.act);
    ops::geglu(s.gate.data(), s.up.data(), s.hidden.data(), n * c.n_ff);
    matmul(*L.ffn_down, s.hidden.data(), n, s.att_out.data(), pool, s.act);
    norm_rows(s.att_out.data(), *L.post_ffn_norm, n, d, c.norm_eps);
    add_inplace(s.x.data(), s.att_out.data(), n * d);
  }
  output_logits(model, n, which, s, pool);
}

}  // namespace pocketlm
