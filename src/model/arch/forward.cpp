#include "model/arch/forward.h"

#include <algorithm>

#include "kernels/matmul.h"
#include "model/arch/gemma3.h"
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

void output_logits(const Model& model, int64_t n, Logits which, ForwardScratch& s, ThreadPool& pool) {
  if (which == Logits::None) return;
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t d = c.n_embd;
  const auto* out_norm = reinterpret_cast<const float*>(w.output_norm->data);
  const int64_t first = which == Logits::All ? 0 : n - 1, n_out = n - first;
  for (int64_t t = first; t < n; ++t) ops::rms_norm(&s.x[t * d], out_norm, &s.xn[(t - first) * d], d, c.norm_eps);
  s.logits.resize(static_cast<size_t>(n_out * c.n_vocab));
  matmul(*w.output, s.xn.data(), n_out, s.logits.data(), pool, s.act);
  if (c.final_logit_softcap > 0) ops::softcap(s.logits.data(), n_out * c.n_vocab, c.final_logit_softcap);
}

void add_inplace(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

ForwardFn forward_for(const ModelConfig& c) {
  if (c.arch == "gemma3") return &gemma3_forward;
  return &llama_forward;  // llama and the Llama-shaped families (SmolLM2)
}

}  // namespace pocketlm
