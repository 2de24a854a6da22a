#include "model/attention.h"

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/ref/vec_dot.h"
#include "model/ops.h"
#include "quant/formats/float.h"

namespace pocketlm {

void attention(const float* q, int64_t n_tokens, int64_t pos0, int64_t layer, const KvCache& kv,
               const AttentionShape& shape, float scale, float* out, ThreadPool& pool,
               std::vector<AttentionScratch>& scratch) {
  const int64_t hd = shape.head_dim, group = shape.n_head / shape.n_head_kv, q_dim = shape.n_head * hd;
  const bool f16 = kv.type() == KvType::F16;
  const GgmlType t = f16 ? GgmlType::F16 : GgmlType::F32;
  const kernels::GemmFn gemm = kernels::gemm_for(t);
  const kernels::WeightedRowsFn weighted = kernels::weighted_rows_for(f16);
  const size_t q_row = row_size(t, hd), kv_row = kv.row_bytes();
  // Query tokens per job: the scores of a job (tokens x group columns, each over its visible cache)
  // are kept near 256 K floats, so they stay in the core's L2.
  const int64_t n_kv_all = pos0 + n_tokens;
  const int64_t chunk = std::clamp<int64_t>((256 * 1024) / std::max<int64_t>(1, group * n_kv_all), 1, 64);
  const int64_t n_chunks = (n_tokens + chunk - 1) / chunk;
  if (scratch.size() < static_cast<size_t>(pool.size())) scratch.resize(static_cast<size_t>(pool.size()));
  const uint8_t* k_base = kv.k_rows(layer);
  const uint8_t* v_base = kv.v_rows(layer);
  const int64_t window = kv.window(layer);

  pool.parallel_for(shape.n_head_kv * n_chunks, [&](int64_t b, int64_t e, int thread) {
    AttentionScratch& s = scratch[static_cast<size_t>(thread)];
    for (int64_t job = b; job < e; ++job) {
      const int64_t h = job / n_chunks, t0 = (job % n_chunks) * chunk, t1 = std::min(t0 + chunk, n_tokens);
      const int64_t n_cols = (t1 - t0) * group, n_kv = pos0 + t1;  // the last token sees the most
      if (s.q.size() < q_row * static_cast<size_t>(n_cols)) s.q.resize(q_row * static_cast<size_t>(n_cols));
      if (s.scores.size() < static_cast<size_t>(n_cols * n_kv)) s.scores.resize(static_cast<size_t>(n_cols * n_kv));
      // Column (token tt, head g of the group) holds query head h * group + g of token t0 + tt.
      for (int64_t tt = 0; tt < t1 - t0; ++tt)
        for (int64_t g = 0; g < group; ++g)
          quantize_activations(t, q + (t0 + tt) * q_dim + (h * group + g) * hd,
                               s.q.data() + static_cast<size_t>(tt * group + g) * q_row, hd);
      float* scores = s.scores.data();
      gemm(hd, k_base + static_cast<size_t>(h * hd) * (f16 ? 2 : 4), kv_row, n_kv, s.q.data(), q_row, n_cols,
           scores, n_kv);
      for (int64_t col = 0; col < n_cols; ++col) {
        float* row = scores + col * n_kv;
        const int64_t visible = pos0 + t0 + col / group + 1;
        const int64_t first = window > 0 ? std::max<int64_t>(0, visible - window) : 0;  // sliding window
        for (int64_t j = first; j < visible; ++j) row[j] *= scale;
        ops::softmax(row + first, visible - first);
        if (f16)
          for (int64_t j = first; j < visible; ++j) row[j] = fp16_to_fp32(fp32_to_fp16(row[j]));
        std::fill(row, row + first, 0.0f);
        std::fill(row + visible, row + n_kv, 0.0f);
      }
      // out rows of this job's columns start zeroed, then accumulate P . V.
      for (int64_t tt = 0; tt < t1 - t0; ++tt)
        std::fill_n(out + (t0 + tt) * q_dim + h * group * hd, group * hd, 0.0f);
      // Columns of one token are `hd` floats apart in out, tokens q_dim apart: run one weighted pass per
      // token so the output stride is uniform.
      for (int64_t tt = 0; tt < t1 - t0; ++tt)
        weighted(pos0 + t0 + tt + 1, hd, v_base + static_cast<size_t>(h * hd) * (f16 ? 2 : 4), kv_row,
                 scores + tt * group * n_kv, static_cast<size_t>(n_kv), group,
                 out + (t0 + tt) * q_dim + h * group * hd, static_cast<size_t>(hd));
    }
  });
}

}  // namespace pocketlm
