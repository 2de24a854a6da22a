#include "model/arch/llama.h"

#include <cmath>

#include "kernels/matmul.h"
#include "model/attention.h"
#include "model/ops.h"
#include "formats/float.h"

namespace pocketlm {

void llama_forward(const Model& model, std::span<const int32_t> tokens, int64_t pos0, Logits which, KvCache& kv,
                   ForwardScratch& s, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t d = c.n_embd, hd = c.head_dim, q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool neox = c.rope_type == RopeType::NeoX;
  s.reserve(c, n, kv.n_ctx(), pool.size());

  embed_tokens(model, tokens, s);

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const auto* attn_norm = reinterpret_cast<const float*>(L.attn_norm->data);
    for (int64_t t = 0; t < n; ++t) ops::rms_norm(&s.x[t * d], attn_norm, &s.xn[t * d], d, c.norm_eps);
    const MatmulTarget qkv[] = {{L.wq, 0, L.wq->ne[1], s.q.data()},
                                {L.wk, 0, L.wk->ne[1], s.k.data()},
                                {L.wv, 0, L.wv->ne[1], s.v.data()}};
    matmul_many(qkv, s.xn.data(), n, pool, s.act);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < c.n_head; ++h)
        ops::rope(&s.q[t * q_dim + h * hd], c.rope_dim, pos0 + t, c.rope_freq_base, c.rope_freq_scale, neox);
      for (int64_t h = 0; h < c.n_head_kv; ++h)
        ops::rope(&s.k[t * kv_dim + h * hd], c.rope_dim, pos0 + t, c.rope_freq_base, c.rope_freq_scale, neox);
      kv.store(l, pos0 + t, &s.k[t * kv_dim], &s.v[t * kv_dim]);
    }
    attention(s.q.data(), n, pos0, l, kv, {c.n_head, c.n_head_kv, hd}, scale, s.att.data(), pool, s.attn);
    matmul(*L.wo, s.att.data(), n, s.att_out.data(), pool, s.act);
    add_inplace(s.x.data(), s.att_out.data(), n * d);

    const auto* ffn_norm = reinterpret_cast<const float*>(L.ffn_norm->data);
    for (int64_t t = 0; t < n; ++t) ops::rms_norm(&s.x[t * d], ffn_norm, &s.xn[t * d], d, c.norm_eps);
    const MatmulTarget gate_up[] = {{L.ffn_gate, 0, L.ffn_gate->ne[1], s.gate.data()},
                                    {L.ffn_up, 0, L.ffn_up->ne[1], s.up.data()}};
    matmul_many(gate_up, s.xn.data(), n, pool, s.act);
    ops::swiglu(s.gate.data(), s.up.data(), s.hidden.data(), n * c.n_ff);
    matmul(*L.ffn_down, s.hidden.data(), n, s.att_out.data(), pool, s.act);
    add_inplace(s.x.data(), s.att_out.data(), n * d);
  }

  output_logits(model, n, which, s, pool);
}

}  // namespace pocketlm
