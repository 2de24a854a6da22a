#include "model/arch/gemma.h"

namespace pocketlm {

void gemma_forward(const Model& model, std::span<const int32_t> tokens, std::span<const SeqSlice> seqs,
                   ForwardScratch& s, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c.n_embd;
  reserve_scratch(c, n, seqs, s, pool.size());
  embed_tokens(model, tokens, s);

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = model.weights().layers[static_cast<size_t>(l)];
    norm_rows(s.x.data(), *L.attn_norm, s.xn.data(), n, d, c.norm_eps);
    attention_block(model, l, seqs, n, s, pool);
    norm_rows(s.att_out.data(), *L.post_attn_norm, s.att_out.data(), n, d, c.norm_eps);
    add_inplace(s.x.data(), s.att_out.data(), n * d);

    norm_rows(s.x.data(), *L.ffn_norm, s.xn.data(), n, d, c.norm_eps);
    ffn_block(model, l, n, s, pool);
    norm_rows(s.att_out.data(), *L.post_ffn_norm, s.att_out.data(), n, d, c.norm_eps);
    add_inplace(s.x.data(), s.att_out.data(), n * d);
  }
  output_logits(model, seqs, s, pool);
}

}  // namespace pocketlm
