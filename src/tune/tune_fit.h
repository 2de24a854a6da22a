#pragma once
// The planner's filter before anything is quantized: each candidate's tensor types from the quantizer's own
// dry-run plan (plan/plan_model with the candidate's QuantizeOptions), its peak RSS at the context and KV type
// (plan/memory_plan) and, when a device is given, its speeds (plan/device_plan); kept when the peak RSS is
// within the budget.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plan/device_profile.h"
#include "plan/plan_model.h"
#include "quant/quantize_model.h"
#include "tune/tune_space.h"
#include "util/error.h"

namespace pocketlm {

struct CandidateFit {
  TuneCandidate candidate;
  uint64_t weights_bytes = 0;
  uint64_t metadata_bytes = 0;  // the GGUF header and metadata (file bytes ~ weights + metadata)
  uint64_t kv_bytes = 0;
  uint64_t peak_rss_bytes = 0;
  std::optional<double> decode_tps, prefill_tps;  // with a device profile
  // Predicted on the machine tune runs on (the `this` profile, measured), when no device is given: they depend
  // on the measurement, so they are kept out of pareto.json (speed.json, the report).
  std::optional<double> this_decode_tps, this_prefill_tps;
  std::shared_ptr<const PlanModel> plan;  // the candidate's tensors as the quantizer will write them
  bool fits = false;
  std::string refused;  // the quantizer cannot write it (a rule's type does not divide a tensor's rows) or the runtime
                        // cannot run it (a KV type the head size cannot hold): why
};

struct FitOptions {
  int64_t n_ctx = 2048;
  uint64_t budget_bytes = 0;
  std::optional<DeviceProfile> device;       // speeds (and the budget when budget_bytes is 0)
  std::optional<DeviceProfile> this_device;  // without a device: the measured machine's speeds (this_*_tps)
  int n_threads = 0;
};

// The shape of `base` pruned by `p`, sized before anything is pruned: every kept tensor's name, shape and type as
// `pocketlm prune` will write it (prune/prune_model's own plan, made with neutral scores: which blocks, heads
// and channels go changes no shape, since widths stay uniform), and the pruned model's configuration. Errors:
// what check_prunable refuses for the architecture (naming the setting).
struct PrunedShape {
  QuantizeShape shape;
  ModelConfig config;
  uint64_t metadata_bytes = 0;
};
Expected<PrunedShape> pruned_shape(const std::string& base_path, const TunePrune& p);

// A draft choice for one candidate: its extra memory (planner: a self-draft's weights, its x16 decode copy, KV
// and scratch; lookup: nothing) and whether the candidate still fits the budget with it.
struct DraftFit {
  TuneDraft draft;
  uint64_t draft_bytes = 0;
  uint64_t peak_rss_bytes = 0;  // the candidate's with this draft
  bool fits = false;
  std::string refused;  // e.g. a self-draft no smaller than the candidate
};
std::vector<DraftFit> fit_drafts(const CandidateFit& f, const std::vector<TuneDraft>& drafts, const FitOptions& o);

// One entry per candidate, in order. A candidate the quantizer refuses (a rule's type cannot hold a tensor's
// rows, ...) does not fit and says why in `refused`. Errors: the base cannot be read or planned.
Expected<std::vector<CandidateFit>> fit_candidates(const std::string& base_path,
                                                   const std::vector<TuneCandidate>& cands, const FitOptions& o);

// "nothing fits BUDGET at -c N: the smallest candidate, ID, needs RSS (weights W, KV K, ...)" for the error when
// no candidate fits.
std::string nothing_fits_message(const std::vector<CandidateFit>& fits, const FitOptions& o);

}  // namespace pocketlm
