#include "plan/speed_plan.h"

#include <algorithm>

#include "bench/roofline.h"
#include "plan/calibration.h"

namespace pocketlm {

SpeedPlan plan_speed(const PlanModel& m, const MemoryPlan& mem, const DeviceProfile& d) {
  const ModelConfig& c = m.config;
  SpeedPlan s;
  const double kv_per_position =
      static_cast<double>(c.n_layer * c.n_head_kv) *
      static_cast<double>(kv_row_bytes(mem.type_k, c.head_dim) + kv_row_bytes(mem.type_v, c.head_dim_v));
  const double weights = static_cast<double>(m.decode_weight_bytes());
  const double params = static_cast<double>(m.matmul_params());
  // K.Q and P.V: 2 x 2 x head_dim ops per query head and attended position.
  const double attn_ops_per_position = 4.0 * static_cast<double>(c.n_layer * c.n_head * c.head_dim);
  const double ops = d.cpu_int8_tops * 1e12;

  // plan/calibration.h: the slower of what the memory delivers and what the cores' kernels consume, plus the
  // threads' fork/join per layer.
  const double weights_x16 = static_cast<double>(m.decode_weight_bytes_x16());
  const PlanCalibration& k = kPlanCalibration;
  // A rate of 0 (a calibration without that fit) sets no limit.
  auto over = [&](double bytes, double bytes_per_op) { return bytes_per_op > 0 ? bytes / (bytes_per_op * ops) : 0.0; };
  auto core_seconds = [&](double context) {
    return over(weights_x16 + kv_per_position * context, k.decode_bytes_per_op) +
           over(weights - weights_x16, k.decode_bytes_per_op_row);
  };
  const int cores = std::max(1, d.cores);
  const double sync_s =
      cores > 1 ? static_cast<double>(c.n_layer) * k.decode_layer_ops / (ops / static_cast<double>(cores)) : 0.0;
  auto decode_at = [&](double context, bool* memory_bound) {
    const double memory_s = (weights + kv_per_position * context) / (k.decode_efficiency * d.bandwidth_gbps * 1e9);
    const double core_s = core_seconds(context);
    if (memory_bound) *memory_bound = memory_s >= core_s;
    return 1.0 / (std::max(memory_s, core_s) + sync_s);
  };
  const double ctx_tg = tg_mean_context(kPlanDecodeTokens);
  s.decode_bytes_per_token = weights + kv_per_position * ctx_tg;
  s.decode_weight_bytes_x16 = weights_x16;
  s.decode_kv_bytes_per_token = kv_per_position * ctx_tg;
  s.decode_roofline_tps = roofline_tokens_per_s(d.bandwidth_gbps, s.decode_bytes_per_token);
  const double core_tg = core_seconds(ctx_tg);
  s.decode_compute_tps = core_tg > 0 ? 1.0 / core_tg : 0.0;  // 0: no core limit calibrated
  s.decode_tps = decode_at(ctx_tg, &s.decode_memory_bound);
  s.decode_tps_full_context = decode_at(static_cast<double>(mem.n_ctx), nullptr);

  const double ctx_pp = (static_cast<double>(kPlanPrefillTokens) + 1.0) / 2.0;
  const double head = static_cast<double>(m.head_params());
  s.prefill_ops_per_token =
      2.0 * (params - head) + 2.0 * head / static_cast<double>(kPlanPrefillTokens) + attn_ops_per_position * ctx_pp;
  s.prefill_compute_tps = ops / s.prefill_ops_per_token;
  s.prefill_memory_tps = roofline_tokens_per_s(d.bandwidth_gbps, static_cast<double>(m.weight_bytes())) *
                         static_cast<double>(kPlanPrefillTokens);
  const double overhead_ops = kPlanCalibration.prefill_layer_ops * static_cast<double>(c.n_layer);
  s.prefill_tps = std::min(ops / (s.prefill_ops_per_token + overhead_ops), s.prefill_memory_tps) *
                  kPlanCalibration.prefill_efficiency;
  if (d.power_w > 0) {
    s.joules_per_token = d.power_w / s.decode_tps;
    s.prefill_joules_per_token = d.power_w / s.prefill_tps;
  }
  return s;
}

}  // namespace pocketlm
