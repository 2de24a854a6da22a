#include "bench/roofline.h"

namespace pocketlm {

DecodeBytes decode_bytes(const Model& model, KvType type_k, std::optional<KvType> type_v) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  DecodeBytes d;
  auto add = [&](const GgufTensor* t) {
    if (t) d.weights += t->nbytes;
  };
  for (const LayerWeights& l : w.layers) {
    for (const GgufTensor* t : l.all()) add(t);
  }
  add(w.output_norm);
  add(w.output);  // the whole head: every vocabulary row is scored
  if (w.token_embd && w.token_embd != w.output) {
    d.weights += row_size(w.token_embd->type, w.token_embd->ne[0]);  // one embedding row
  }
  // Every layer's rows at every position (a sliding-window layer reads fewer once the context passes its
  // window: this is the upper bound).
  d.kv_per_position = static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(c.n_head_kv) *
                      (kv_row_bytes(type_k, c.head_dim) + kv_row_bytes(type_v.value_or(type_k), c.head_dim_v));
  return d;
}

}  // namespace pocketlm
