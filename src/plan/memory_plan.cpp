#include "plan/memory_plan.h"

#include <algorithm>

#include "plan/calibration.h"
#include "runtime/session.h"

namespace pocketlm {

namespace {

double value_bytes(KvType t) { return static_cast<double>(kv_row_bytes(t, 64) - kv_row_scale_bytes(t)) / 64.0; }

// The forward pass's buffers at their largest: a prompt batch of n tokens (model/arch/forward.cpp's
// ForwardScratch::reserve), the matmul's quantized activations for the widest input, and per thread the
// attention's score rows over the whole context (model/attention.cpp: jobs of chunk x group columns).
uint64_t scratch_bytes(const ModelConfig& c, int64_t n_ctx, int n_threads) {
  const double n = static_cast<double>(std::min<int64_t>(kMaxBatch, n_ctx));
  const double e = static_cast<double>(c.n_embd), qd = static_cast<double>(c.n_head * c.head_dim);
  const double kvd = static_cast<double>(c.n_head_kv * c.head_dim), ff = static_cast<double>(c.n_ff);
  const double threads = static_cast<double>(n_threads), ctx = static_cast<double>(n_ctx);
  double floats = n * (e + 2 * std::max(e, qd) + 2 * qd + 2 * kvd + 3 * ff);
  floats += (ctx + 2.0 * static_cast<double>(c.head_dim)) * threads;  // ForwardScratch::scores
  floats += static_cast<double>(c.n_vocab);                           // the last token's logits
  const int64_t group = c.n_head / std::max<int64_t>(1, c.n_head_kv);
  const int64_t chunk =
      std::clamp<int64_t>(static_cast<int64_t>(kPlanAttentionScoreFloats) / std::max<int64_t>(1, group * n_ctx), 1, 64);
  floats += static_cast<double>(chunk * group) * ctx * threads;  // AttentionScratch::scores
  const double act = n * std::max({e, qd, ff}) * kPlanActivationBytesPerValue;
  return static_cast<uint64_t>(4 * floats + act);
}

}  // namespace

Expected<MemoryPlan> plan_memory(const PlanModel& m, const MemoryOptions& o) {
  const ModelConfig& c = m.config;
  MemoryPlan p;
  p.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min<int64_t>(c.n_ctx_train > 0 ? c.n_ctx_train : 4096, 4096);
  if (c.n_ctx_train > 0 && p.n_ctx > c.n_ctx_train)
    return Error("context " + std::to_string(p.n_ctx) + " is larger than the model's trained context of " +
                 std::to_string(c.n_ctx_train) + " tokens (" + m.source + ")");
  p.type_k = o.type_k;
  p.type_v = o.type_v;
  SessionOptions so;
  so.kv_type = o.type_k;
  so.kv_type_v = o.type_v;
  so.kv_block = o.kv_block;
  const KvLayout layout = kv_layout_for(c, so);
  PLM_CHECK(layout.validate());

  p.weights_bytes = m.weight_bytes();
  for (const auto& [type, bytes] : m.bytes_by_type()) p.weights_by_type.emplace_back(type, bytes);
  std::sort(p.weights_by_type.begin(), p.weights_by_type.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  p.kv = kv_memory_report(layout, p.n_ctx, kMaxBatch);
  p.kv_bytes = p.kv.total;
  p.kv_formula_bytes = static_cast<uint64_t>(static_cast<double>(c.n_layer * c.n_head_kv * c.head_dim * p.n_ctx) *
                                             (value_bytes(o.type_k) + value_bytes(o.type_v)));
  p.scratch_bytes = scratch_bytes(c, p.n_ctx, std::max(1, o.n_threads));
  p.metadata_bytes = m.metadata_bytes;
  p.overhead_bytes = static_cast<uint64_t>(kPlanCalibration.overhead_fixed_bytes +
                                           kPlanCalibration.overhead_per_vocab_bytes * static_cast<double>(c.n_vocab)) +
                     m.metadata_bytes;
  if (o.draft) {
    MemoryOptions d = o;
    d.draft = nullptr;
    d.n_ctx = p.n_ctx;
    auto dp = plan_memory(*o.draft, d);
    if (!dp) return dp.error().with_context("draft model");
    p.draft_bytes = dp->weights_bytes + dp->kv_bytes + dp->scratch_bytes + dp->metadata_bytes;
  }
  p.peak_rss_bytes = p.weights_bytes + p.kv_bytes + p.scratch_bytes + p.overhead_bytes + p.draft_bytes;
  return p;
}

int64_t max_context(const PlanModel& m, MemoryOptions o, uint64_t budget_bytes) {
  const int64_t hi_ctx = m.config.n_ctx_train > 0 ? m.config.n_ctx_train : (int64_t{1} << 20);
  auto fits = [&](int64_t n) {
    o.n_ctx = n;
    auto p = plan_memory(m, o);
    return p.ok() && p->peak_rss_bytes <= budget_bytes;
  };
  if (!fits(1)) return 0;
  if (fits(hi_ctx)) return hi_ctx;
  int64_t lo = 1, hi = hi_ctx;  // fits(lo), !fits(hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

std::optional<KvType> best_kv_type(const PlanModel& m, MemoryOptions o, uint64_t budget_bytes) {
  for (KvType t : {KvType::F16, KvType::Q8, KvType::Q4}) {
    o.type_k = o.type_v = t;
    auto p = plan_memory(m, o);
    if (p.ok() && p->peak_rss_bytes <= budget_bytes) return t;
  }
  return std::nullopt;
}

}  // namespace pocketlm
