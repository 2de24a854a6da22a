#pragma once
// The planner checked against a real run: after `pocketlm plan -m FILE --device this`, the same file is
// benchmarked on this machine (pocketlm's own pp512 / tg128, as `pocketlm bench`), and the prediction is set
// beside the measurement. The read bandwidth is probed again after the benchmark: the prediction scales with
// the probe, and a VM's bandwidth moves (this project's CI machines read 34–72 GB/s over a day), so a check
// whose two probes disagree says so instead of blaming the model.
#include <nlohmann/json.hpp>
#include <string>

#include "plan/device_plan.h"
#include "util/error.h"

namespace pocketlm {

struct PlanCheckOptions {
  int n_threads = 0;    // 0: the plan's device cores
  int repetitions = 3;  // timed runs of each test (medians), after one warm-up
};

struct PlanCheck {
  int n_threads = 0, repetitions = 0;
  double bandwidth_plan_gbps = 0;   // the probe the prediction was made with
  double bandwidth_after_gbps = 0;  // probed again after the benchmark
  double prefill_predicted_tps = 0, prefill_measured_tps = 0, prefill_error_pct = 0;
  double decode_predicted_tps = 0, decode_measured_tps = 0, decode_error_pct = 0;
  bool prefill_within = false, decode_within = false;  // the targets below
  bool bandwidth_moved = false;                        // the two probes differ by more than 10 %
};

inline constexpr double kPlanCheckPrefillTolerancePct = 30;  // the planner's stated accuracy on `this`
inline constexpr double kPlanCheckDecodeTolerancePct = 20;
inline constexpr double kPlanCheckBandwidthDriftPct = 10;

// `plan` must be a plan for the measured device `this` (DeviceProfile::measured) of the model at
// `model_path` as it is on disk (no recipe applied): otherwise an error says why. Benchmark errors name the
// file.
Expected<PlanCheck> check_plan_here(const std::string& model_path, const DevicePlan& plan,
                                    const PlanCheckOptions& options = {});

// The "check" object `pocketlm plan --check -o json` adds to the device (stable field names, docs/plan.md).
nlohmann::json plan_check_json(const PlanCheck& c);

// The table `pocketlm plan --check` prints under the breakdown.
std::string format_plan_check(const PlanCheck& c);

}  // namespace pocketlm
