#include "model/weights.h"

#include <algorithm>

#include "kernels/matmul.h"

namespace pocketlm {

namespace {
enum class Use { Matmul, Rows, Norm, Vector };

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
  const bool type_ok = use == Use::Norm || use == Use::Vector
                           ? t->type == GgmlType::F32
                           : (tt.can_dequantize && (use == Use::Rows || has_vec_dot(t->type)));
  if (!type_ok)
    return Error(f.path() + ": tensor '" + name + "': type " + std::string(tt.name) + " is not supported for " +
                 (use == Use::Norm     ? "a norm weight (needs f32)"
                  : use == Use::Vector ? "a bias or factor vector (needs f32)"
                  : use == Use::Rows   ? "an embedding"
                                       : "a matrix multiply"));
  return t;
}

// A tensor the architecture may carry: null when absent, checked like need() when present.
Expected<const GgufTensor*> optional(const GgufFile& f, const std::string& name, std::vector<int64_t> shape, Use use) {
  if (!f.tensor(name)) return static_cast<const GgufTensor*>(nullptr);
  return need(f, name, std::move(shape), use);
}

// The outlier branch of the matrix `base` + ".weight" (n_in inputs, n_out outputs): `base`.outlier_w and
// `base`.outlier_idx, both or neither. Shapes, types and channels are checked; errors name the tensor.
Status bind_side(const GgufFile& f, const std::string& base, int64_t n_in, int64_t n_out, OutlierColumns& side,
                 ModelWeights& w) {
  const std::string wn = base + ".outlier_w", in = base + ".outlier_idx";
  const GgufTensor* wt = f.tensor(wn);
  const GgufTensor* it = f.tensor(in);
  if (!wt && !it) return {};
  if (!wt || !it)
    return Error(f.path() + ": tensor '" + (wt ? in : wn) + "': missing (the outlier branch of '" + base +
                 ".weight' needs both " + wn + " and " + in + ")");
  if (it->type != GgmlType::I32 || it->n_dims != 1)
    return Error(f.path() + ": tensor '" + in + "': " + std::string(type_traits(it->type).name) + " " +
                 it->shape_string() + ", expected i32 [K] (the outlier channels)");
  const int64_t k = it->ne[0];
  const int64_t k_max = std::min<int64_t>(kMaxOutlierColumns, n_in / 2);
  if (k < 1 || k > k_max)
    return Error(f.path() + ": tensor '" + in + "': " + std::to_string(k) + " outlier channels for a matrix of " +
                 std::to_string(n_in) + " inputs (1 to " + std::to_string(k_max) + " allowed)");
  if (wt->type != GgmlType::F16 || wt->n_dims != 2 || wt->ne[0] != k || wt->ne[1] != n_out)
    return Error(f.path() + ": tensor '" + wn + "': " + std::string(type_traits(wt->type).name) + " " +
                 wt->shape_string() + ", expected f16 [" + std::to_string(k) + ", " + std::to_string(n_out) +
                 "] (K outlier columns of each of the " + std::to_string(n_out) + " output rows)");
  const auto* idx = reinterpret_cast<const int32_t*>(it->data);
  for (int64_t j = 0; j < k; ++j)
    if (idx[j] < 0 || idx[j] >= n_in || (j > 0 && idx[j] <= idx[j - 1]))
      return Error(f.path() + ": tensor '" + in + "': channel " + std::to_string(idx[j]) + " at index " +
                   std::to_string(j) + " (channels must be strictly increasing, in [0, " + std::to_string(n_in) + "))");
  side.k = k;
  side.idx = idx;
  side.w = reinterpret_cast<const uint16_t*>(wt->data);
  w.outlier_tensors.push_back(wt);
  w.outlier_tensors.push_back(it);
  w.outlier_k = std::max(w.outlier_k, k);
  return {};
}

// Q, K and V: three matrices with optional biases, or (phi3) one fused matrix of q_dim + 2 kv_dim rows.
Status bind_qkv(const GgufFile& f, const std::string& p, int64_t d, int64_t q_dim, int64_t kv_dim, LayerWeights& L) {
  if (f.tensor(p + "attn_qkv.weight")) {
    PLM_TRY(L.wqkv, need(f, p + "attn_qkv.weight", {d, q_dim + 2 * kv_dim}, Use::Matmul));
    PLM_TRY(L.bqkv, optional(f, p + "attn_qkv.bias", {q_dim + 2 * kv_dim}, Use::Vector));
  } else {
    PLM_TRY(L.wq, need(f, p + "attn_q.weight", {d, q_dim}, Use::Matmul));
    PLM_TRY(L.wk, need(f, p + "attn_k.weight", {d, kv_dim}, Use::Matmul));
    PLM_TRY(L.wv, need(f, p + "attn_v.weight", {d, kv_dim}, Use::Matmul));
  }
  if (!L.bqkv) {
    PLM_TRY(L.bq, optional(f, p + "attn_q.bias", {q_dim}, Use::Vector));
    PLM_TRY(L.bk, optional(f, p + "attn_k.bias", {kv_dim}, Use::Vector));
    PLM_TRY(L.bv, optional(f, p + "attn_v.bias", {kv_dim}, Use::Vector));
  }
  PLM_TRY(L.bo, optional(f, p + "attn_output.bias", {d}, Use::Vector));
  return {};
}
}  // namespace

const float* ModelWeights::rope_factors(const ModelConfig& c, int64_t n_ctx) const {
  const GgufTensor* t = rope_freqs ? rope_freqs : n_ctx > c.n_ctx_orig ? rope_long : rope_short;
  return t ? reinterpret_cast<const float*>(t->data) : nullptr;
}

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
  PLM_TRY(w.rope_freqs, optional(f, "rope_freqs.weight", {c.rope_dim / 2}, Use::Vector));
  PLM_TRY(w.rope_short, optional(f, "rope_factors_short.weight", {c.rope_dim / 2}, Use::Vector));
  PLM_TRY(w.rope_long, optional(f, "rope_factors_long.weight", {c.rope_dim / 2}, Use::Vector));
  if ((w.rope_short == nullptr) != (w.rope_long == nullptr))
    return Error(f.path() + ": tensor '" + (w.rope_short ? "rope_factors_long.weight" : "rope_factors_short.weight") +
                 "': missing (LongRoPE needs both the short and the long factors)");
  if (w.rope_freqs && w.rope_short)
    return Error(f.path() + ": tensor 'rope_freqs.weight': present beside LongRoPE factors (one kind of RoPE factors)");
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    PLM_TRY(L.attn_norm, need(f, p + "attn_norm.weight", {d}, Use::Norm));
    if (auto st = bind_qkv(f, p, d, q_dim, kv_dim, L); !st) return st.error();
    PLM_TRY(L.wo, need(f, p + "attn_output.weight", {q_dim, d}, Use::Matmul));
    PLM_TRY(L.ffn_norm, need(f, p + "ffn_norm.weight", {d}, Use::Norm));
    if (c.fused_gate_up) {  // gate rows, then up rows
      PLM_TRY(L.ffn_up, need(f, p + "ffn_up.weight", {d, 2 * c.n_ff}, Use::Matmul));
    } else {
      PLM_TRY(L.ffn_gate, need(f, p + "ffn_gate.weight", {d, c.n_ff}, Use::Matmul));
      PLM_TRY(L.ffn_up, need(f, p + "ffn_up.weight", {d, c.n_ff}, Use::Matmul));
    }
    PLM_TRY(L.ffn_down, need(f, p + "ffn_down.weight", {c.n_ff, d}, Use::Matmul));
    const auto side = [&](const char* name, const GgufTensor* t, OutlierColumns& s) -> Status {
      return t ? bind_side(f, p + name, t->ne[0], t->ne[1], s, w) : Status{};
    };
    for (auto st : {side("attn_qkv", L.wqkv, L.wqkv_side), side("attn_q", L.wq, L.wq_side),
                    side("attn_k", L.wk, L.wk_side), side("attn_v", L.wv, L.wv_side),
                    side("attn_output", L.wo, L.wo_side), side("ffn_gate", L.ffn_gate, L.ffn_gate_side),
                    side("ffn_up", L.ffn_up, L.ffn_up_side), side("ffn_down", L.ffn_down, L.ffn_down_side)})
      if (!st.ok()) return st.error();
    if (c.qk_norm) {
      PLM_TRY(L.attn_q_norm, need(f, p + "attn_q_norm.weight", {c.head_dim}, Use::Norm));
      PLM_TRY(L.attn_k_norm, need(f, p + "attn_k_norm.weight", {c.head_dim}, Use::Norm));
    }
    if (c.post_norms) {
      PLM_TRY(L.post_attn_norm, need(f, p + "post_attention_norm.weight", {d}, Use::Norm));
      PLM_TRY(L.post_ffn_norm, need(f, p + "post_ffw_norm.weight", {d}, Use::Norm));
    }
  }
  for (const GgufTensor& t : f.tensors()) {  // a side tensor no matrix took is a broken file, not a no-op
    const bool side = t.name.ends_with(".outlier_w") || t.name.ends_with(".outlier_idx");
    if (side && std::find(w.outlier_tensors.begin(), w.outlier_tensors.end(), &t) == w.outlier_tensors.end())
      return Error(f.path() + ": tensor '" + t.name + "': an outlier branch for no matrix of this model");
  }
  return w;
}

size_t ModelWeights::total_bytes() const {
  size_t n = token_embd->nbytes + output_norm->nbytes + (output != token_embd ? output->nbytes : 0);
  for (const GgufTensor* t : {rope_freqs, rope_short, rope_long})
    if (t) n += t->nbytes;
  for (const auto& L : layers)
    for (const GgufTensor* t : L.all())
      if (t) n += t->nbytes;
  for (const GgufTensor* t : outlier_tensors) n += t->nbytes;
  return n;
}

}  // namespace pocketlm
