#include "model/attention.h"

#include <algorithm>
#include <cmath>

#include "formats/float.h"
#include "kernels/dispatch.h"
#include "kernels/ref/vec_dot.h"
#include "model/ops.h"

namespace pocketlm {

namespace {

// The kernels that read one cache type, and how a query is rounded to meet K.
struct KvKernels {
  kernels::GemmFn k_dot;
  kernels::WeightedRowsFn v_rows;
  KvType q_type;  // the query's row format for k_dot
  size_t q_row;   // bytes of one query row (head_dim values)
  bool p_to_f16;  // ggml rounds P to f16 before P . V over an f16 V (non-flash path)
  kernels::ScaledSoftmaxFn softmax;
};

KvKernels kv_kernels(KvType k, KvType v, int64_t hd) {
  KvKernels r{};
  if (kv_type_quantized(k)) {
    r.k_dot = kernels::kv_gemm_for(k);
    r.q_type = KvType::Q8;
  } else {
    r.k_dot = kernels::gemm_for(k == KvType::F16 ? GgmlType::F16 : GgmlType::F32);
    r.q_type = k;
  }
  r.q_row = kv_row_bytes(r.q_type, hd);
  r.v_rows = kv_type_quantized(v) ? kernels::kv_weighted_rows_for(v) : kernels::weighted_rows_for(v == KvType::F16);
  r.p_to_f16 = v == KvType::F16;
  r.softmax = kernels::scaled_softmax_for();
  return r;
}

void quantize_query(KvType t, const float* x, uint8_t* dst, int64_t hd) {
  if (t == KvType::Q8)
    kernels::quantize_kv_row(KvType::Q8, x, dst, hd);
  else
    quantize_activations(t == KvType::F16 ? GgmlType::F16 : GgmlType::F32, x, dst, hd);
}

}  // namespace

void attention(const float* q, int64_t n_tokens, int64_t pos0, int64_t layer, const KvCache& kv,
               const AttentionShape& shape, float scale, float* out, ThreadPool& pool,
               std::vector<AttentionScratch>& scratch) {
  const int64_t hd = shape.head_dim, group = shape.n_head / shape.n_head_kv, q_dim = shape.n_head * hd;
  const KvLayerView view = kv.view(layer);
  const KvKernels kk = kv_kernels(view.type_k, view.type_v, hd);
  const int64_t window = view.window, B = view.block_tokens;
  // First position token t (at pos0 + t) sees.
  const auto first_seen = [&](int64_t t) { return window > 0 ? std::max<int64_t>(0, pos0 + t - window + 1) : 0; };
  // Query tokens per job: the scores of a job (tokens x group columns, each over its visible cache)
  // are kept near 256 K floats, so they stay in the core's L2.
  const int64_t n_seen_max = window > 0 ? std::min(window + n_tokens, pos0 + n_tokens) : pos0 + n_tokens;
  const int64_t chunk = std::clamp<int64_t>((256 * 1024) / std::max<int64_t>(1, group * n_seen_max), 1, 64);
  const int64_t n_chunks = (n_tokens + chunk - 1) / chunk;
  // With fewer (KV head, token chunk) jobs than threads (decode and short verification batches on a model with
  // fewer KV heads than threads: Gemma 3 270M has one), a KV head's query heads are shared out in `parts`
  // jobs, each reading that head's K and V, so no thread idles. A column's scores, softmax and P . V do not
  // depend on the other columns of its job (the kernels are column-invariant: kernel_conformance), so the bits
  // are the same. Splitting further (to balance SmolLM2's three KV heads on two threads) measured slower at
  // depth: every part converts the head's K again (docs/benchmarks.md).
  const int64_t jobs = shape.n_head_kv * n_chunks, threads = static_cast<int64_t>(pool.size());
  const int64_t parts = jobs < threads ? std::min<int64_t>((threads + jobs - 1) / jobs, group) : 1;
  if (scratch.size() < static_cast<size_t>(pool.size())) scratch.resize(static_cast<size_t>(pool.size()));

  pool.parallel_for(jobs * parts, [&](int64_t b, int64_t e, int thread) {
    AttentionScratch& s = scratch[static_cast<size_t>(thread)];
    for (int64_t job = b; job < e; ++job) {
      const int64_t part = job % parts, hc = job / parts;
      const int64_t h = hc / n_chunks, t0 = (hc % n_chunks) * chunk, t1 = std::min(t0 + chunk, n_tokens);
      const int64_t g0 = part * group / parts, g1 = (part + 1) * group / parts, ng = g1 - g0;
      // The job's positions: from what its first token sees to its last token.
      const int64_t lo = first_seen(t0), hi = pos0 + t1, span = hi - lo;
      const int64_t n_cols = (t1 - t0) * ng;
      if (s.q.size() < kk.q_row * static_cast<size_t>(n_cols)) s.q.resize(kk.q_row * static_cast<size_t>(n_cols));
      if (s.scores.size() < static_cast<size_t>(n_cols * span)) s.scores.resize(static_cast<size_t>(n_cols * span));
      // Column (token tt, head g0 + g of the group) holds query head h * group + g0 + g of token t0 + tt.
      for (int64_t tt = 0; tt < t1 - t0; ++tt)
        for (int64_t g = 0; g < ng; ++g)
          quantize_query(kk.q_type, q + (t0 + tt) * q_dim + (h * group + g0 + g) * hd,
                         s.q.data() + static_cast<size_t>(tt * ng + g) * kk.q_row, hd);
      float* scores = s.scores.data();
      // scores[col][p - lo] = K[p] . Q[col], block by block (a block's rows are contiguous).
      for (int64_t p = lo; p < hi;) {
        const int64_t p_end = std::min(hi, (p / B + 1) * B);
        kk.k_dot(hd, view.k_token(p) + static_cast<size_t>(h) * view.k_head_bytes, view.k_token_bytes, p_end - p,
                 s.q.data(), kk.q_row, n_cols, scores + (p - lo), span);
        p = p_end;
      }
      for (int64_t col = 0; col < n_cols; ++col) {
        float* row = scores + col * span;
        const int64_t t = t0 + col / ng;
        const int64_t first = first_seen(t) - lo, visible = pos0 + t + 1 - lo;  // [first, visible) of the span
        if (shape.softcap > 0) {
          const float inv_cap = 1.0f / shape.softcap;
          for (int64_t j = first; j < visible; ++j) row[j] = std::tanh(row[j] * inv_cap) * shape.softcap;
        }
        kk.softmax(row + first, visible - first, scale, kk.p_to_f16);
        std::fill(row, row + first, 0.0f);
        std::fill(row + visible, row + span, 0.0f);
      }
      // out rows of this job's columns start zeroed, then accumulate P . V block by block. Columns of one
      // token are `hd` floats apart in out, tokens q_dim apart: one pass per token keeps the stride uniform.
      for (int64_t tt = 0; tt < t1 - t0; ++tt) {
        float* o = out + (t0 + tt) * q_dim + (h * group + g0) * hd;
        std::fill_n(o, ng * hd, 0.0f);
        const int64_t p_end_tok = pos0 + t0 + tt + 1;
        for (int64_t p = first_seen(t0 + tt); p < p_end_tok;) {
          const int64_t p_end = std::min(p_end_tok, (p / B + 1) * B);
          kk.v_rows(p_end - p, hd, view.v_token(p) + static_cast<size_t>(h) * view.v_head_bytes, view.v_token_bytes,
                    scores + tt * ng * span + (p - lo), static_cast<size_t>(span), ng, o, static_cast<size_t>(hd));
          p = p_end;
        }
      }
    }
  });
}

}  // namespace pocketlm
