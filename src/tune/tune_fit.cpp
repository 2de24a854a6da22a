#include "tune/tune_fit.h"

#include <algorithm>
#include <map>

#include "formats/kv_types.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "plan/device_plan.h"
#include "plan/memory_plan.h"
#include "plan/plan_model.h"
#include "plan/speed_plan.h"
#include "prune/prune_model.h"
#include "quant/imatrix.h"
#include "quant/methods/method.h"
#include "quant/quantize_model.h"
#include "quant/recipe.h"
#include "runtime/speculative/self_draft.h"
#include "util/byte_size.h"

namespace pocketlm {

namespace {

uint64_t budget_of(const FitOptions& o) {
  return o.budget_bytes > 0 ? o.budget_bytes : (o.device ? o.device->budget_bytes() : 0);
}

Expected<MemoryOptions> memory_options(const TuneCandidate& c, const FitOptions& o) {
  MemoryOptions mo;
  mo.n_ctx = o.n_ctx;
  PLM_TRY(mo.type_k, parse_kv_type(c.kv_type));
  mo.type_v = mo.type_k;
  mo.n_threads = o.n_threads > 0 ? o.n_threads : 1;
  return mo;
}

}  // namespace

Expected<PrunedShape> pruned_shape(const std::string& base_path, const TunePrune& p) {
  ModelLoadOptions lo;
  lo.decode_layout = false;  // only the shapes are read
  PLM_TRY(std::unique_ptr<Model> model, Model::load(base_path, lo));
  const ModelConfig& c = model->config();
  PruneOptions o = tune_prune_options(p, c.n_layer);
  o.repair = false;  // the refit changes values, not shapes or types
  o.progress = false;
  // Neutral scores: which blocks, heads and channels go does not change a shape (widths stay uniform).
  PruneStats st;
  st.n_tokens = 1;
  st.n_layer = c.n_layer;
  st.layers.resize(static_cast<size_t>(c.n_layer));
  for (auto& l : st.layers) {
    l.head.assign(static_cast<size_t>(c.n_head), 0.0);
    l.ffn.assign(static_cast<size_t>(c.n_ff), 0.0);
  }
  st.angular.assign(static_cast<size_t>((c.n_layer + 1) * (c.n_layer + 1)), 0.0);
  auto plan = plan_pruning(*model, &st, o);
  if (!plan) return Error("prune level '" + p.name + "': " + plan.error().message());
  PrunedShape out;
  out.shape.name = base_path + " pruned " + p.name;
  PLM_TRY(out.shape.info, recipe_model_info(model->gguf()));
  out.shape.info.n_layer = static_cast<int64_t>(plan->kept_layers.size());
  out.shape.info.n_head = plan->out_n_head;
  out.shape.info.n_head_kv = plan->out_n_head_kv;
  for (const PruneTensorPlan& t : plan->tensors) out.shape.tensors.push_back({t.out_name, t.out_ne, t.out_type});
  out.config = c;
  out.config.n_layer = out.shape.info.n_layer;
  out.config.n_head = plan->out_n_head;
  out.config.n_head_kv = plan->out_n_head_kv;
  out.config.n_ff = plan->out_n_ff;
  if (!c.layer_is_local.empty()) {
    out.config.layer_is_local.clear();
    for (int64_t l : plan->kept_layers) out.config.layer_is_local.push_back(c.layer_is_local[static_cast<size_t>(l)]);
  }
  out.metadata_bytes = model->gguf().data_offset();
  return out;
}

Expected<std::vector<CandidateFit>> fit_candidates(const std::string& base_path,
                                                   const std::vector<TuneCandidate>& cands, const FitOptions& o) {
  const uint64_t budget = budget_of(o);
  if (budget == 0) return Error("no memory budget: give a device or a budget in bytes").about("budget");
  PLM_TRY(GgufFile base, GgufFile::open(base_path));
  const Imatrix no_entries;  // a recipe's plan depends on whether an importance matrix is used, not on its values
  std::map<std::string, Expected<PrunedShape>> pruned;  // by prune level: sized once
  std::vector<CandidateFit> out;
  for (const TuneCandidate& c : cands) {
    QuantizeOptions q;
    q.progress = false;
    CandidateFit f;
    f.candidate = c;
    auto refuse = [&](const std::string& why) {
      f.refused = why;
      out.push_back(std::move(f));
    };
    const PrunedShape* ps = nullptr;
    if (!c.prune.none()) {
      auto it = pruned.find(c.prune.name);
      if (it == pruned.end()) it = pruned.emplace(c.prune.name, pruned_shape(base_path, c.prune)).first;
      if (!it->second) {
        refuse(it->second.error().message());
        continue;
      }
      ps = &*it->second;
    }
    if (auto st = ps ? tune_quantize_options(c, ps->shape.tensors, q) : tune_quantize_options(c, base, q); !st) {
      refuse(st.error().message());
      continue;
    }
    PLM_TRY(QuantMethod m, parse_quant_method(c.method));
    if (m != QuantMethod::Rtn) q.imatrix = &no_entries;
    Expected<PlanModel> pm = Error("");
    if (ps) {
      pm = plan_model_from_quantize_shape(ps->shape, ps->config, ps->metadata_bytes, q);
    } else {
      PlanRecipe recipe;
      recipe.options = &q;
      pm = plan_model_from_gguf(base_path, recipe);
    }
    if (!pm) {
      refuse(pm.error().message());
      continue;
    }
    PLM_TRY(MemoryOptions mo, memory_options(c, o));
    auto mp = plan_memory(*pm, mo);
    if (!mp) {  // e.g. a KV type the model's head size cannot hold
      refuse(mp.error().message());
      continue;
    }
    f.weights_bytes = mp->weights_bytes;
    f.metadata_bytes = pm->metadata_bytes;
    f.kv_bytes = mp->kv_bytes;
    f.peak_rss_bytes = mp->peak_rss_bytes;
    if (o.device) {
      const SpeedPlan sp = plan_speed(*pm, *mp, *o.device);
      f.decode_tps = sp.decode_tps;
      f.prefill_tps = sp.prefill_tps;
    } else if (o.this_device) {
      const SpeedPlan sp = plan_speed(*pm, *mp, *o.this_device);
      f.this_decode_tps = sp.decode_tps;
      f.this_prefill_tps = sp.prefill_tps;
    }
    f.plan = std::make_shared<const PlanModel>(std::move(*pm));
    f.fits = f.peak_rss_bytes <= budget;
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<DraftFit> fit_drafts(const CandidateFit& f, const std::vector<TuneDraft>& drafts, const FitOptions& o) {
  const uint64_t budget = budget_of(o);
  std::vector<DraftFit> out;
  for (const TuneDraft& d : drafts) {
    DraftFit df;
    df.draft = d;
    df.peak_rss_bytes = f.peak_rss_bytes;
    if (!f.plan) {
      df.refused = "the candidate was not planned";
      out.push_back(df);
      continue;
    }
    if (d.kind == TuneDraft::Kind::Self) {
      // The self-draft as runtime/speculative/self_draft builds it: every matrix of the first N layers (and the
      // embedding and head) requantized to the type, falling back per row width; the rest copied.
      const PlanModel& t = *f.plan;
      if (d.layers > t.config.n_layer) {
        df.refused = "a self-draft of " + std::to_string(d.layers) + " layers: the candidate has " +
                     std::to_string(t.config.n_layer);
        out.push_back(df);
        continue;
      }
      PlanModel dm;
      dm.source = t.source + " (self-draft " + d.name + ")";
      dm.config = t.config;
      if (d.layers > 0) {
        dm.config.n_layer = d.layers;
        if (!dm.config.layer_is_local.empty()) dm.config.layer_is_local.resize(static_cast<size_t>(d.layers));
      }
      dm.metadata_bytes = t.metadata_bytes;
      for (const PlanTensor& x : t.tensors) {
        if (x.name.rfind("blk.", 0) == 0 && d.layers > 0 && std::stoll(x.name.substr(4)) >= d.layers) continue;
        PlanTensor y = x;
        const bool matrix = x.n_elements > x.row_width;
        const GgmlType to = matrix ? self_draft_row_type(d.self_type, x.row_width) : x.type;
        if (to != x.type && type_traits(x.type).can_dequantize && x.row_width % type_traits(to).block_size == 0) {
          y.type = to;
          y.bytes = row_size(to, x.row_width) * static_cast<uint64_t>(x.n_elements / x.row_width);
        }
        dm.tensors.push_back(y);
      }
      if (dm.weight_bytes() >= t.weight_bytes()) {
        df.refused = "a self-draft " + std::string(type_traits(d.self_type).name) + " would be " +
                     human_bytes(static_cast<double>(dm.weight_bytes())) + ", no smaller than the candidate (" +
                     human_bytes(static_cast<double>(t.weight_bytes())) + ")";
        out.push_back(df);
        continue;
      }
      auto mo = memory_options(f.candidate, o);
      if (!mo) {
        df.refused = mo.error().message();
        out.push_back(df);
        continue;
      }
      mo->draft = &dm;
      auto mp = plan_memory(t, *mo);
      if (!mp) {
        df.refused = mp.error().message();
        out.push_back(df);
        continue;
      }
      // The in-memory image stays allocated beside the x16 decode copies of its matrices (docs/speculative.md).
      df.draft_bytes = mp->draft_bytes + dm.decode_weight_bytes_x16();
      df.peak_rss_bytes = mp->peak_rss_bytes + dm.decode_weight_bytes_x16();
    }
    df.fits = f.fits && df.peak_rss_bytes <= budget;
    out.push_back(df);
  }
  return out;
}

std::string nothing_fits_message(const std::vector<CandidateFit>& fits, const FitOptions& o) {
  const uint64_t budget = budget_of(o);
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
