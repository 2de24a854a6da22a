#include "model/weights.h"

#include "kernels/matmul.h"

namespace pocketlm {

namespace {
enum class Use { Matmul, Rows, Norm };

Expected<const GgufTensor*> need(const GgufFile& f, const std::string& name, std::vector<int64_t> shape, Use use) {
  const GgufTensor* t = f.tensor(name);
  if (!t) return Error(f.path() + ": tensor '" + name + "': missing");
  bool ok = t->n_dims == static_cast<int>(shape.size()) ||
            (t->n_dims > static_cast<int>(shape.size()));  // trailing dims of 1 are allowed
  for (int d = 0; d < kGgufMaxDims && ok; ++d) {
    const int64_t want = d < static_cast<int>(shape.size()) ? shape[static_cast<size_t>(d)] : 1;
    ok = t->ne[d] == want;
  }
  if (!ok) {
    std::string s = "[";
    for (size_t d = 0; d < shape.size(); ++d) s += (d ? ", " : "") + std::to_string(shape[d]);
    return Error(f.path() + ": tensor '" + name + "': shape " + t->shape_string() + ", expected " + s + "]");
  }
  const TypeTraits& tt = type_traits(t->type);
  const bool type_ok = use == Use::Norm ? t->type == GgmlType::F32
                                        : (tt.can_dequantize && (use == Use::Rows || has_vec_dot(t->type)));
  if (!type_ok)
    return Error(f.path() + ": tensor '" + name + "': type " + std::string(tt.name) + " is not supported for " +
                 (use == Use::Norm ? "a norm weight (needs f32)" : use == Use::Rows ? "an embedding" : "a matrix multiply"));
  return t;
}
}  // namespace

Expected<ModelWeights> ModelWeights::bind(const GgufFile& f, const ModelConfig& c) {
  ModelWeights w;
  const int64_t d = c.n_embd, q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
  PLM_TRY(w.token_embd, need(f, "token_embd.weight", {d, c.n_vocab}, Use::Rows));
  PLM_TRY(w.output_norm, need(f, "output_norm.weight", {d}, Use::Norm));
  if (c.tied_embeddings) {
    if (!has_vec_dot(w.token_embd->type))
      return Error(f.path() + ": tensor 'token_embd.weight': tied output head of type " +
                   std::string(type_traits(w.token_embd->type).name) + " cannot be multiplied");
    w.output = w.token_embd;
  } else {
    PLM_TRY(w.output, need(f, "output.weight", {d, c.n_vocab}, Use::Matmul));
  }
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    PLM_TRY(L.attn_norm, need(f, p + "attn_norm.weight", {d}, Use::Norm));
    PLM_TRY(L.wq, need(f, p + "attn_q.weight", {d, q_dim}, Use::Matmul));
    PLM_TRY(L.wk, need(f, p + "attn_k.weight", {d, kv_dim}, Use::Matmul));
    PLM_TRY(L.wv, need(f, p + "attn_v.weight", {d, kv_dim}, Use::Matmul));
    PLM_TRY(L.wo, need(f, p + "attn_output.weight", {q_dim, d}, Use::Matmul));
    PLM_TRY(L.ffn_norm, need(f, p + "ffn_norm.weight", {d}, Use::Norm));
    PLM_TRY(L.ffn_gate, need(f, p + "ffn_gate.weight", {d, c.n_ff}, Use::Matmul));
    PLM_TRY(L.ffn_up, need(f, p + "ffn_up.weight", {d, c.n_ff}, Use::Matmul));
    PLM_TRY(L.ffn_down, need(f, p + "ffn_down.weight", {c.n_ff, d}, Use::Matmul));
    if (c.arch == "gemma3") {
      PLM_TRY(L.attn_q_norm, need(f, p + "attn_q_norm.weight", {c.head_dim}, Use::Norm));
      PLM_TRY(L.attn_k_norm, need(f, p + "attn_k_norm.weight", {c.head_dim}, Use::Norm));
      PLM_TRY(L.post_attn_norm, need(f, p + "post_attention_norm.weight", {d}, Use::Norm));
      PLM_TRY(L.post_ffn_norm, need(f, p + "post_ffw_norm.weight", {d}, Use::Norm));
    }
  }
  return w;
}

size_t ModelWeights::total_bytes() const {
  size_t n = token_embd->nbytes + output_norm->nbytes + (output != token_embd ? output->nbytes : 0);
  for (const auto& L : layers)
    for (const GgufTensor* t : L.all())
      if (t) n += t->nbytes;
  return n;
}

}  // namespace pocketlm
