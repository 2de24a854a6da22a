#pragma once
// Causal grouped-query attention of a batch of query tokens over one layer's KV cache, as matrix products:
// for each KV head and a chunk of query tokens,
//   scores = K . Q        the kernels' GEMM: cached K rows as the "weight", the group's query vectors as
//                         columns, rounded to the cache type first (f16 cache: Q in f16, as ggml does);
//   P = softmax(scale * scores) over each query's visible prefix (positions <= its own), 0 elsewhere;
//                         with an f16 cache P is rounded to f16 before P . V, as ggml's non-flash path does;
//   out = P . V           the kernels' weighted rows.
#include <cstdint>
#include <vector>

#include "model/kv_cache.h"
#include "util/thread_pool.h"

namespace pocketlm {

struct AttentionShape {
  int64_t n_head, n_head_kv, head_dim;
  float softcap = 0.0f;  // > 0 (gemma2): each score K.Q becomes softcap * tanh(K.Q / softcap) before `scale`
};

// Per-thread buffers, grown on demand.
struct AttentionScratch {
  std::vector<float> scores;
  std::vector<uint8_t> q;
};

// q and out: n_tokens rows of n_head * head_dim floats; token t is at position pos0 + t and sees cache
// positions [0, pos0 + t], or on a sliding-window layer (kv.window(layer) = W > 0) only (pos0 + t - W, pos0 + t].
// The cache must already hold the batch's own K and V.
void attention(const float* q, int64_t n_tokens, int64_t pos0, int64_t layer, const KvCache& kv,
               const AttentionShape& shape, float scale, float* out, ThreadPool& pool,
               std::vector<AttentionScratch>& scratch);

}  // namespace pocketlm
