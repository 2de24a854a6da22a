#include "bench/roofline.h"

namespace pocketlm {

DecodeBytes decode_bytes(const Model& model, KvType kv_type) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  DecodeBytes d;
  auto add = [&](const GgufTensor* t) {
    if (t) d.weights += t->nbytes;
  };
  for (const LayerWeights& l : w.layers) {
    for (const GgufTensor* t : {l.attn_norm, l.wq, l.wk, l.wv, l.wo, l.ffn_norm, l.ffn_gate, l.ffn_up, l.ffn_down}) add(t);
  }
  add(w.output_norm);
  add(w.output);  // the whole head: every vocabulary row is scored
  if (w.token_embd && w.token_embd != w.output) {
    d.weights += row_size(w.token_embd->type, w.token_embd->ne[0]);  // one embedding row
  }
  const uint64_t elem = kv_type == KvType::F32 ? 4 : 2;
  d.kv_per_position = static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(c.n_head_kv) *
                      static_cast<uint64_t>(c.head_dim + c.head_dim_v) * elem;
  return d;
}

}  // namespace pocketlm
