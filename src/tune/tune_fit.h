#pragma once
// The planner's filter before anything is quantized: each candidate's tensor types from the quantizer's own
// dry-run plan (plan/plan_model with the candidate's QuantizeOptions), its peak RSS at the context and KV type
// (plan/memory_plan) and, when a device is given, its speeds (plan/device_plan); kept when the peak RSS is
// within the budget.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plan/device_profile.h"
#include "tune/tune_space.h"
#include "util/error.h"

namespace pocketlm {

struct CandidateFit {
  TuneCandidate candidate;
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t peak_rss_bytes = 0;
  std::optional<double> decode_tps, prefill_tps;  // with a device profile
  bool fits = false;
  std::string refused;  // the quantizer cannot write it (a rule's type does not divide a tensor's rows) or the runtime
                        // cannot run it (a KV type the head size cannot hold): why
};

struct FitOptions {
  int64_t n_ctx = 2048;
  uint64_t budget_bytes = 0;
  std::optional<DeviceProfile> device;  // speeds (and the budget when budget_bytes is 0)
  int n_threads = 0;
};

// One entry per candidate, in order. A candidate the quantizer refuses (a rule's type cannot hold a tensor's
// rows, ...) does not fit and says why in `refused`. Errors: the base cannot be read or planned.
Expected<std::vector<CandidateFit>> fit_candidates(const std::string& base_path,
                                                   const std::vector<TuneCandidate>& cands, const FitOptions& o);

// "nothing fits BUDGET at -c N: the smallest candidate, ID, needs RSS (weights W, KV K, ...)" for the error when
// no candidate fits.
std::string nothing_fits_message(const std::vector<CandidateFit>& fits, const FitOptions& o);

}  // namespace pocketlm
