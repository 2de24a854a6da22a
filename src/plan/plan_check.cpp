#include "plan/plan_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench/bandwidth.h"
#include "bench/bench_run.h"
#include "plan/speed_plan.h"

namespace pocketlm {
namespace {

double error_pct(double predicted, double measured) { return 100.0 * (predicted - measured) / measured; }

}  // namespace

Expected<PlanCheck> check_plan_here(const std::string& model_path, const DevicePlan& plan,
                                    const PlanCheckOptions& options) {
  if (!plan.device.measured)
    return Error("the check runs the model on this machine: it needs the measured device `this`, not '" +
                 plan.device.name + "'")
        .about("device");
  if (options.repetitions < 1) return Error("repetitions must be at least 1").about("repetitions");
  PlanCheck c;
  c.n_threads = options.n_threads > 0 ? options.n_threads : std::max(1, plan.device.cores);
  c.repetitions = options.repetitions;
  c.bandwidth_plan_gbps = plan.device.bandwidth_gbps;

  BenchConfig b;
  b.models = {model_path};
  b.n_prompt = {static_cast<int>(kPlanPrefillTokens)};
  b.n_gen = {static_cast<int>(kPlanDecodeTokens)};
  b.threads = {c.n_threads};
  b.repetitions = options.repetitions;
  b.bandwidth = false;  // probed below, after the run, to see whether the machine moved
  PLM_TRY(const BenchReport report, run_bench(b));
  for (const auto& row : report.rows) {
    const std::string test = row.at("test").get<std::string>();
    const double tps = row.at("median_ts").get<double>();
    if (test.rfind("pp", 0) == 0) c.prefill_measured_tps = tps;
    if (test.rfind("tg", 0) == 0) c.decode_measured_tps = tps;
  }
  if (c.prefill_measured_tps <= 0 || c.decode_measured_tps <= 0)
    return Error(model_path + ": the benchmark gave no pp512 / tg128 figure");
  c.bandwidth_after_gbps = measure_read_bandwidth(c.n_threads).gb_per_s;

  c.prefill_predicted_tps = plan.speed.prefill_tps;
  c.decode_predicted_tps = plan.speed.decode_tps;
  c.prefill_error_pct = error_pct(c.prefill_predicted_tps, c.prefill_measured_tps);
  c.decode_error_pct = error_pct(c.decode_predicted_tps, c.decode_measured_tps);
  c.prefill_within = std::fabs(c.prefill_error_pct) <= kPlanCheckPrefillTolerancePct;
  c.decode_within = std::fabs(c.decode_error_pct) <= kPlanCheckDecodeTolerancePct;
  c.bandwidth_moved = std::fabs(error_pct(c.bandwidth_after_gbps, c.bandwidth_plan_gbps)) > kPlanCheckBandwidthDriftPct;
  return c;
}

nlohmann::json plan_check_json(const PlanCheck& c) {
  return {{"threads", c.n_threads},
          {"repetitions", c.repetitions},
          {"bandwidth_plan_gbps", c.bandwidth_plan_gbps},
          {"bandwidth_after_gbps", c.bandwidth_after_gbps},
          {"bandwidth_moved", c.bandwidth_moved},
          {"prefill_predicted_tps", c.prefill_predicted_tps},
          {"prefill_measured_tps", c.prefill_measured_tps},
          {"prefill_error_pct", c.prefill_error_pct},
          {"prefill_within", c.prefill_within},
          {"decode_predicted_tps", c.decode_predicted_tps},
          {"decode_measured_tps", c.decode_measured_tps},
          {"decode_error_pct", c.decode_error_pct},
          {"decode_within", c.decode_within}};
}

std::string format_plan_check(const PlanCheck& c) {
  char buf[1024];
  auto mark = [](bool ok) { return ok ? "within" : "OUTSIDE"; };
  std::snprintf(
      buf, sizeof buf,
      "\ncheck: pocketlm bench on this machine, -t %d, medians of %d\n"
      "| test | predicted t/s | measured t/s | error | target |\n"
      "|---|---:|---:|---:|---|\n"
      "| pp%lld | %.1f | %.1f | %+.0f %% | ±%.0f %%: %s |\n"
      "| tg%lld | %.1f | %.1f | %+.0f %% | ±%.0f %%: %s |\n"
      "read bandwidth: %.1f GB/s when planned, %.1f GB/s after the run%s\n",
      c.n_threads, c.repetitions, static_cast<long long>(kPlanPrefillTokens), c.prefill_predicted_tps,
      c.prefill_measured_tps, c.prefill_error_pct, kPlanCheckPrefillTolerancePct, mark(c.prefill_within),
      static_cast<long long>(kPlanDecodeTokens), c.decode_predicted_tps, c.decode_measured_tps, c.decode_error_pct,
      kPlanCheckDecodeTolerancePct, mark(c.decode_within), c.bandwidth_plan_gbps, c.bandwidth_after_gbps,
      c.bandwidth_moved ? " — the machine's bandwidth moved during the check: decode predictions move with it" : "");
  return buf;
}

}  // namespace pocketlm
