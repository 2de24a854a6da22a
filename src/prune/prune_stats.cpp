#include "prune/prune_stats.h"

#include <algorithm>
#include <cmath>

#include "model/arch/forward.h"
#include "model/kv_cache.h"
#include "model/kv_pool.h"
#include "runtime/session.h"

namespace pocketlm {

namespace {

constexpr double kPi = 3.14159265358979323846;

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// gram (n x n, upper triangle and diagonal) += sum over the rows of x (n_rows x n) of x x^T.
void add_gram(std::vector<float>& gram, const float* x, int64_t n_rows, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      float* g = &gram[static_cast<size_t>(i * n)];
      for (int64_t t = 0; t < n_rows; ++t) {
        const float* row = x + t * n;
        const float xi = row[i];
        if (xi == 0.0f) continue;
        for (int64_t j = i; j < n; ++j) g[j] += xi * row[j];
      }
    }
  });
}

// Per column j of a matrix stored as GGUF rows (ne[1] rows of ne[0]): the L2 norm over the rows.
std::vector<double> column_norms(const GgufTensor& t) {
  const std::vector<float> w = tensor_to_f32(t);
  const int64_t cols = t.ne[0], rows = t.n_rows();
  std::vector<double> n(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double v = w[static_cast<size_t>(r * cols + j)];
      n[static_cast<size_t>(j)] += v * v;
    }
  for (double& v : n) v = std::sqrt(v);
  return n;
}

const GgufTensor& file_tensor(const Model& model, int64_t layer, const char* suffix) {
  const GgufTensor* t = model.gguf().tensor("blk." + std::to_string(layer) + "." + suffix);
  assert(t != nullptr);  // bound by ModelWeights::bind
  return *t;
}

}  // namespace

Expected<PruneStats> collect_prune_stats(const Model& model, std::span<const std::vector<int32_t>> sequences,
                                         const PruneStatsOptions& o, const std::function<void(int64_t)>& tokens_done) {
  const ModelConfig& c = model.config();
  const int64_t L = c.n_layer, d = c.n_embd, hd = c.head_dim, q_dim = c.n_head * hd, n_ff = c.n_ff;
  int64_t longest = 0, total = 0;
  for (const auto& s : sequences) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(s.size()));
    total += static_cast<int64_t>(s.size());
  }
  if (total == 0) return Error("pruning calibration: no tokens");
  if (longest > c.n_ctx_train)
    return Error("pruning calibration: a sequence of " + std::to_string(longest) +
                 " tokens is longer than the context " + c.name + " was trained on (" + std::to_string(c.n_ctx_train) +
                 ")");
  if (model.repacked().count() > 0)
    return Error("pruning calibration: load the model without the decode layout (ModelLoadOptions::decode_layout)");

  SessionOptions so;
  so.kv_type = KvType::F32;
  const KvLayout layout = kv_layout_for(c, so);
  PLM_CHECK(layout.validate());
  PLM_TRY(std::shared_ptr<KvPool> kv_pool, KvPool::create(layout.block_bytes(), kv_bytes_for_context(layout, longest)));
  ThreadPool pool(o.n_threads > 0 ? o.n_threads : physical_cores());
  const int64_t n_batch = std::max<int64_t>(1, std::min(o.n_batch, kMaxBatch));

  PruneStats st;
  st.n_layer = L;
  st.layers.resize(static_cast<size_t>(L));
  st.angular.assign(static_cast<size_t>((L + 1) * (L + 1)), 0.0);
  std::vector<std::vector<double>> head_norm(static_cast<size_t>(L),
                                             std::vector<double>(static_cast<size_t>(c.n_head), 0.0));
  std::vector<std::vector<double>> ffn_abs(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(n_ff), 0.0));
  for (const auto& [a, b] : o.absorb) {
    if (a < 1 || b <= a || b > L || !o.gram)
      return Error("pruning calibration: bad absorb run [" + std::to_string(a) + ", " + std::to_string(b) + ")");
    st.layers[static_cast<size_t>(a - 1)].absorb_end = b;
    st.layers[static_cast<size_t>(a - 1)].absorb_cross.assign(static_cast<size_t>(d * n_ff), 0.0f);
  }
  std::vector<std::vector<float>> kept_hidden(static_cast<size_t>(L));  // this batch's h of absorbing blocks
  for (auto& ls : st.layers) {
    if (o.gram) {
      ls.attn_gram.assign(static_cast<size_t>(q_dim * q_dim), 0.0f);
      ls.ffn_gram.assign(static_cast<size_t>(n_ff * n_ff), 0.0f);
    }
  }

  ForwardScratch s;
  std::vector<float> bounds;  // (L + 1) x n x d: the residual stream at every block boundary
  std::vector<double> norms;  // (L + 1) x n
  for (const auto& seq : sequences) {
    if (seq.empty()) continue;
    KvCache kv(layout, static_cast<int64_t>(seq.size()), kv_pool);
    for (int64_t pos0 = 0; pos0 < static_cast<int64_t>(seq.size()); pos0 += n_batch) {
      const int64_t n = std::min<int64_t>(n_batch, static_cast<int64_t>(seq.size()) - pos0);
      PLM_CHECK(kv.reserve(pos0, n));
      const SeqSlice slice{&kv, pos0, n, Logits::None};
      const std::span<const SeqSlice> seqs(&slice, 1);
      reserve_scratch(c, n, seqs, s, pool.size());
      bounds.resize(static_cast<size_t>((L + 1) * n * d));
      norms.resize(static_cast<size_t>((L + 1) * n));
      const auto save = [&](int64_t b) {
        std::copy_n(s.x.data(), n * d, &bounds[static_cast<size_t>(b * n * d)]);
        for (int64_t t = 0; t < n; ++t) {
          const float* x = &s.x[static_cast<size_t>(t * d)];
          norms[static_cast<size_t>(b * n + t)] = std::sqrt(dot(x, x, d));
        }
      };
      embed_tokens(model, std::span<const int32_t>(seq).subspan(static_cast<size_t>(pos0), static_cast<size_t>(n)), s);
      save(0);
      for (int64_t l = 0; l < L; ++l) {
        const LayerWeights& W = model.weights().layers[static_cast<size_t>(l)];
        LayerPruneStats& ls = st.layers[static_cast<size_t>(l)];
        norm_rows(s.x.data(), *W.attn_norm, s.xn.data(), n, d, c.norm_eps);
        attention_block(model, l, seqs, n, s, pool);
        auto& hn = head_norm[static_cast<size_t>(l)];
        for (int64_t t = 0; t < n; ++t)
          for (int64_t h = 0; h < c.n_head; ++h) {
            const float* a = &s.att[static_cast<size_t>(t * q_dim + h * hd)];
            hn[static_cast<size_t>(h)] += std::sqrt(dot(a, a, hd));
          }
        if (o.gram) add_gram(ls.attn_gram, s.att.data(), n, q_dim, pool);
        if (W.post_attn_norm) norm_rows(s.att_out.data(), *W.post_attn_norm, s.att_out.data(), n, d, c.norm_eps);
        add_inplace(s.x.data(), s.att_out.data(), n * d);

        norm_rows(s.x.data(), *W.ffn_norm, s.xn.data(), n, d, c.norm_eps);
        ffn_block(model, l, n, s, pool);
        auto& fa = ffn_abs[static_cast<size_t>(l)];
        for (int64_t t = 0; t < n; ++t) {
          const float* h = &s.hidden[static_cast<size_t>(t * n_ff)];
          for (int64_t j = 0; j < n_ff; ++j) fa[static_cast<size_t>(j)] += std::fabs(h[j]);
        }
        if (o.gram) add_gram(ls.ffn_gram, s.hidden.data(), n, n_ff, pool);
        if (ls.absorb_end >= 0)
          kept_hidden[static_cast<size_t>(l)].assign(s.hidden.begin(), s.hidden.begin() + n * n_ff);
        if (W.post_ffn_norm) norm_rows(s.att_out.data(), *W.post_ffn_norm, s.att_out.data(), n, d, c.norm_eps);
        add_inplace(s.x.data(), s.att_out.data(), n * d);
        for (int64_t i = 0; i < n * d; ++i)
          if (!std::isfinite(s.x[static_cast<size_t>(i)]))
            return Error("pruning calibration: a non-finite activation leaving block " + std::to_string(l));
        save(l + 1);
      }
      // Angles between every pair of boundaries, for every token of the batch.
      pool.parallel_for(L + 1, [&](int64_t b, int64_t e, int) {
        for (int64_t a = b; a < e; ++a)
          for (int64_t bb = a + 1; bb <= L; ++bb) {
            double sum = 0;
            for (int64_t t = 0; t < n; ++t) {
              const double na = norms[static_cast<size_t>(a * n + t)], nb = norms[static_cast<size_t>(bb * n + t)];
              const double cosv = na > 0 && nb > 0 ? dot(&bounds[static_cast<size_t>((a * n + t) * d)],
                                                         &bounds[static_cast<size_t>((bb * n + t) * d)], d) /
                                                         (na * nb)
                                                   : 1.0;
              sum += std::acos(std::clamp(cosv, -1.0, 1.0)) / kPi;
              if (bb == a + 1) st.layers[static_cast<size_t>(a)].bi += 1.0 - cosv;
            }
            st.angular[static_cast<size_t>(a * (L + 1) + bb)] += sum;
          }
      });
      // Cross moments of what each absorbed run adds with the absorbing block's activations.
      for (int64_t l = 0; l < L; ++l) {
        LayerPruneStats& ls = st.layers[static_cast<size_t>(l)];
        if (ls.absorb_end < 0) continue;
        const float* xa = &bounds[static_cast<size_t>((l + 1) * n * d)];
        const float* xb = &bounds[static_cast<size_t>(ls.absorb_end * n * d)];
        const std::vector<float>& h = kept_hidden[static_cast<size_t>(l)];
        pool.parallel_for(d, [&](int64_t b0, int64_t e0, int) {
          for (int64_t r = b0; r < e0; ++r) {
            float* row = &ls.absorb_cross[static_cast<size_t>(r * n_ff)];
            for (int64_t t = 0; t < n; ++t) {
              const float delta = xb[t * d + r] - xa[t * d + r];
              const float* ht = &h[static_cast<size_t>(t * n_ff)];
              for (int64_t j = 0; j < n_ff; ++j) row[j] += delta * ht[j];
            }
          }
        });
      }
      st.n_tokens += n;
      if (tokens_done) tokens_done(n);
    }
  }

  const double inv = 1.0 / static_cast<double>(st.n_tokens);
  for (double& a : st.angular) a *= inv;
  for (int64_t l = 0; l < L; ++l) {
    LayerPruneStats& ls = st.layers[static_cast<size_t>(l)];
    ls.bi *= inv;
    // Head h: its mean output norm times the Frobenius norm of its hd columns of attn_output.
    const std::vector<double> wo = column_norms(file_tensor(model, l, "attn_output.weight"));
    ls.head.assign(static_cast<size_t>(c.n_head), 0.0);
    for (int64_t h = 0; h < c.n_head; ++h) {
      double f = 0;
      for (int64_t i = 0; i < hd; ++i) f += wo[static_cast<size_t>(h * hd + i)] * wo[static_cast<size_t>(h * hd + i)];
      ls.head[static_cast<size_t>(h)] = head_norm[static_cast<size_t>(l)][static_cast<size_t>(h)] * inv * std::sqrt(f);
    }
    const std::vector<double> wd = column_norms(file_tensor(model, l, "ffn_down.weight"));
    ls.ffn.assign(static_cast<size_t>(n_ff), 0.0);
    for (int64_t j = 0; j < n_ff; ++j)
      ls.ffn[static_cast<size_t>(j)] =
          ffn_abs[static_cast<size_t>(l)][static_cast<size_t>(j)] * inv * wd[static_cast<size_t>(j)];
    // Mirror the upper triangles so the Gram matrices are whole.
    for (auto* g : {&ls.attn_gram, &ls.ffn_gram}) {
      if (g->empty()) continue;
      const int64_t m = g == &ls.attn_gram ? q_dim : n_ff;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < i; ++j) (*g)[static_cast<size_t>(i * m + j)] = (*g)[static_cast<size_t>(j * m + i)];
    }
  }
  return st;
}

}  // namespace pocketlm
