#pragma once
// DevicePlan: a model + recipe + context on one device: the memory plan against the device's budget (fits,
// the largest context that fits, the best KV type), the predicted speeds and energy; and the reports
// `pocketlm plan` prints (a Markdown breakdown, a table across devices, JSON with stable field names).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "plan/device_profile.h"
#include "plan/memory_plan.h"
#include "plan/plan_model.h"
#include "plan/speed_plan.h"

namespace pocketlm {

struct DevicePlan {
  DeviceProfile device;
  uint64_t budget_bytes = 0;
  MemoryPlan memory;
  SpeedPlan speed;
  bool fits = false;
  int64_t max_context = 0;             // with the requested KV types
  std::optional<KvType> best_kv_type;  // at the requested context
};

// `o.n_threads` 0: the device's cores.
Expected<DevicePlan> plan_for_device(const PlanModel& m, MemoryOptions o, const DeviceProfile& d);

std::string format_plan_breakdown(const PlanModel& m, const DevicePlan& p);               // one device, Markdown
std::string format_plan_table(const PlanModel& m, const std::vector<DevicePlan>& plans);  // one row per device
// {"model": ..., "devices": [{"device", "weights_bytes", "kv_bytes", "scratch_bytes", "overhead_bytes",
//  "draft_bytes", "peak_rss_bytes", "budget_bytes", "fits", "max_context", "best_kv_type", "prefill_tps",
//  "decode_tps", "joules_per_token", ...}]}
std::string plan_json(const PlanModel& m, const std::vector<DevicePlan>& plans);
nlohmann::json plan_json_value(const PlanModel& m, const std::vector<DevicePlan>& plans);  // the same, as a value

}  // namespace pocketlm
