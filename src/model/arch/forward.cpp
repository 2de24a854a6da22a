#include "model/arch/forward.h"

#include <algorithm>

#include "model/arch/llama.h"

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

ForwardFn forward_for(const ModelConfig& c) {
  (void)c;  // every architecture from_gguf accepts runs the Llama pass so far
  return &llama_forward;
}

}  // namespace pocketlm
