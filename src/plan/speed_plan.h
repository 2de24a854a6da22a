#pragma once
// SpeedPlan: predicted prefill and decode tokens/s of a model on a device, and the energy per token.
//   decode:  a token reads every weight once plus the KV of the positions it attends over (bench/roofline),
//            so at most bandwidth / bytes per token; and the cores' kernels consume weights at a fitted number of
//            bytes per int8 op of the CPU (a few cores cannot use a phone's or a server's whole bandwidth): the
//            slower of the two, plus a fitted fixed time per layer (plan/calibration.h).
//   prefill: a 512-token batch streams the weights once and does 2 x params ops per token (the output head
//            for the last token only), so at most min(cpu_int8_tops / ops per token, bandwidth x 512 / weight
//            bytes). The work outside the matmuls (norms, RoPE, activation quantization, thread hand-offs)
//            does not shrink with the model's width: it is a fitted cost per layer and token, in ops.
// Each bound is multiplied by the efficiency this engine reaches on the machine it was calibrated on
// (plan/calibration.h, scripts/calibrate-plan.sh). Energy: the device's power over the tokens/s.
#include <cstdint>

#include "plan/device_profile.h"
#include "plan/memory_plan.h"
#include "plan/plan_model.h"

namespace pocketlm {

struct SpeedPlan {
  // Decode from an empty cache, as `pocketlm bench` tg128 (mean context 64.5 positions) ...
  double decode_bytes_per_token = 0;
  double decode_weight_bytes_x16 = 0;    // of which weights in the x16 decode layout
  double decode_kv_bytes_per_token = 0;  // and KV cache
  double decode_roofline_tps = 0;        // bandwidth / bytes per token
  double decode_compute_tps = 0;         // what the cores' decode kernels can consume (0: not calibrated)
  double decode_tps = 0;                 // min of the two x decode efficiency
  bool decode_memory_bound = true;
  // ... and with the context full (every token attends over n_ctx positions).
  double decode_tps_full_context = 0;
  // Prefill: pp512.
  double prefill_ops_per_token = 0;  // matmuls (head once per batch) + attention at the mean position
  double prefill_compute_tps = 0;    // int8 compute / those ops
  double prefill_memory_tps = 0;
  double prefill_tps = 0;
  // Energy (0 when the device's power is unknown).
  double joules_per_token = 0;  // decode
  double prefill_joules_per_token = 0;
};

inline constexpr int64_t kPlanDecodeTokens = 128;   // tg128
inline constexpr int64_t kPlanPrefillTokens = 512;  // pp512

SpeedPlan plan_speed(const PlanModel& m, const MemoryPlan& mem, const DeviceProfile& d);

}  // namespace pocketlm
