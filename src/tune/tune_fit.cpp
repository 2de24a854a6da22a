#include "tune/tune_fit.h"

#include <algorithm>

#include "formats/kv_types.h"
#include "gguf/reader.h"
#include "plan/device_plan.h"
#include "plan/memory_plan.h"
#include "plan/plan_model.h"
#include "quant/imatrix.h"
#include "quant/methods/method.h"
#include "quant/quantize_model.h"
#include "util/byte_size.h"

namespace pocketlm {

Expected<std::vector<CandidateFit>> fit_candidates(const std::string& base_path,
                                                   const std::vector<TuneCandidate>& cands, const FitOptions& o) {
  const uint64_t budget = o.budget_bytes > 0 ? o.budget_bytes : (o.device ? o.device->budget_bytes() : 0);
  if (budget == 0) return Error("no memory budget: give a device or a budget in bytes").about("budget");
  PLM_TRY(GgufFile base, GgufFile::open(base_path));
  const Imatrix no_entries;  // a recipe's plan depends on whether an importance matrix is used, not on its values
  std::vector<CandidateFit> out;
  for (const TuneCandidate& c : cands) {
    QuantizeOptions q;
    q.progress = false;
    CandidateFit f;
    f.candidate = c;
    if (auto st = tune_quantize_options(c, base, q); !st) {
      f.refused = st.error().message();
      out.push_back(std::move(f));
      continue;
    }
    PLM_TRY(QuantMethod m, parse_quant_method(c.method));
    if (m != QuantMethod::Rtn) q.imatrix = &no_entries;
    PlanRecipe recipe;
    recipe.options = &q;
    auto pm = plan_model_from_gguf(base_path, recipe);
    if (!pm) {
      f.refused = pm.error().message();
      out.push_back(std::move(f));
      continue;
    }
    MemoryOptions mo;
    mo.n_ctx = o.n_ctx;
    PLM_TRY(mo.type_k, parse_kv_type(c.kv_type));
    mo.type_v = mo.type_k;
    mo.n_threads = o.n_threads > 0 ? o.n_threads : 1;
    if (o.device) {
      auto dp = plan_for_device(*pm, mo, *o.device);
      if (!dp) {  // e.g. a KV type the model's head size cannot hold
        f.refused = dp.error().message();
        out.push_back(std::move(f));
        continue;
      }
      f.weights_bytes = dp->memory.weights_bytes;
      f.kv_bytes = dp->memory.kv_bytes;
      f.peak_rss_bytes = dp->memory.peak_rss_bytes;
      f.decode_tps = dp->speed.decode_tps;
      f.prefill_tps = dp->speed.prefill_tps;
    } else {
      auto mp = plan_memory(*pm, mo);
      if (!mp) {
        f.refused = mp.error().message();
        out.push_back(std::move(f));
        continue;
      }
      f.weights_bytes = mp->weights_bytes;
      f.kv_bytes = mp->kv_bytes;
      f.peak_rss_bytes = mp->peak_rss_bytes;
    }
    f.fits = f.peak_rss_bytes <= budget;
    out.push_back(std::move(f));
  }
  return out;
}

std::string nothing_fits_message(const std::vector<CandidateFit>& fits, const FitOptions& o) {
  const uint64_t budget = o.budget_bytes > 0 ? o.budget_bytes : (o.device ? o.device->budget_bytes() : 0);
  std::string msg = "no candidate fits the budget of " + human_bytes(static_cast<double>(budget)) +
                    " at a context of " + std::to_string(o.n_ctx) + " tokens";
  if (fits.empty()) return msg;
  std::vector<CandidateFit> planned;
  for (const auto& f : fits)
    if (f.refused.empty()) planned.push_back(f);
  if (planned.empty())
    return msg + ": the quantizer refuses every candidate (" + fits.front().candidate.id + ": " + fits.front().refused +
           ")";
  const auto it = std::min_element(planned.begin(), planned.end(), [](const CandidateFit& a, const CandidateFit& b) {
    return a.peak_rss_bytes < b.peak_rss_bytes;
  });
  msg += ": the smallest candidate, " + it->candidate.id + ", needs " +
         human_bytes(static_cast<double>(it->peak_rss_bytes)) + " (weights " +
         human_bytes(static_cast<double>(it->weights_bytes)) + ", KV cache " +
         human_bytes(static_cast<double>(it->kv_bytes)) +
         ", the rest scratch and runtime); raise the budget, lower the "
         "context or add smaller targets or KV types to the space";
  return msg;
}

}  // namespace pocketlm
