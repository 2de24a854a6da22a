#include "runtime/speculative/draft_setup.h"

#include <algorithm>
#include <cstdio>

#include "runtime/speculative/lookup_draft.h"
#include "runtime/speculative/model_draft.h"
#include "runtime/speculative/self_draft.h"
#include "runtime/speculative/vocab_match.h"

namespace pocketlm {

namespace {

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / 1048576.0);
  return buf;
}

void share_thread_pool(SessionOptions& o) {
  if (!o.thread_pool) o.thread_pool = shared_thread_pool(o.n_threads);
}

// The draft's session: the target's context, cache types and threads; KV pools as make_draft_source says.
Expected<std::unique_ptr<Session>> draft_session(const Model& target, const Model& draft, SessionOptions& target_opts,
                                                 const std::string& what) {
  const ModelConfig& tc = target.config();
  if (target_opts.n_ctx <= 0) target_opts.n_ctx = std::min<int64_t>(tc.n_ctx_train, 4096);
  share_thread_pool(target_opts);
  SessionOptions d = target_opts;
  d.kv_pool = nullptr;
  d.kv_budget = 0;
  const KvLayout tl = kv_layout_for(tc, target_opts), dl = kv_layout_for(draft.config(), d);
  const size_t need_t = kv_bytes_for_context(tl, target_opts.n_ctx), need_d = kv_bytes_for_context(dl, d.n_ctx);
  if (target_opts.kv_pool)  // the caller's pool stays the target's alone
    return Session::create(draft, d);
  const size_t budget = target_opts.kv_budget;
  if (budget > 0 && budget < need_t + need_d)
    return Error("KV budget of " + mib(budget) + " is too small for the target (" + mib(need_t) + " at " +
                 std::to_string(target_opts.n_ctx) + " tokens) and " + what + " (" + mib(need_d) +
                 ") together: " + "it needs " + mib(need_t + need_d) + " (or a smaller context)");
  if (tl.block_bytes() == dl.block_bytes()) {
    PLM_TRY(std::shared_ptr<KvPool> pool, KvPool::create(tl.block_bytes(), budget > 0 ? budget : need_t + need_d));
    target_opts.kv_pool = pool;
    d.kv_pool = pool;
  } else {
    d.kv_budget = need_d;
    if (budget > 0) target_opts.kv_budget = budget - need_d;
  }
  return Session::create(draft, d);
}

}  // namespace

Status check_draft_params(const DraftParams& p) {
  if (p.max < 1) return Error("draft length: the maximum is " + std::to_string(p.max) + ", it must be at least 1");
  if (p.min < 0 || p.min > p.max)
    return Error("draft length: the minimum " + std::to_string(p.min) + " must be in [0, " + std::to_string(p.max) +
                 "]");
  if (!(p.p_min >= 0.0f && p.p_min <= 1.0f))
    return Error("draft probability threshold " + std::to_string(p.p_min) + " must be in [0, 1]");
  return Status::Ok();
}

Expected<std::unique_ptr<DraftSource>> make_draft_source(const Model& target, const DraftConfig& c,
                                                         SessionOptions& target_opts) {
  const int sources = (c.model_path.empty() ? 0 : 1) + (c.self_type ? 1 : 0) + (c.lookup ? 1 : 0);
  if (sources == 0) return std::unique_ptr<DraftSource>();
  if (sources > 1) return Error("one draft source at a time: a draft model, a self-draft or lookup");
  if (c.self_layers != 0 && !c.self_type) return Error("a layer count for the draft applies to a self-draft only");
  if (c.lookup) {
    if (c.lookup_ngram_min < 1 || c.lookup_ngram_max < c.lookup_ngram_min)
      return Error("lookup n-gram sizes " + std::to_string(c.lookup_ngram_min) + ".." +
                   std::to_string(c.lookup_ngram_max) + ": need 1 <= min <= max");
    return std::unique_ptr<DraftSource>(std::make_unique<LookupDraft>(c.lookup_ngram_min, c.lookup_ngram_max));
  }

  const size_t target_bytes = target.weights().total_bytes();
  std::unique_ptr<Model> draft;
  std::string label, memory;
  if (c.self_type) {
    SelfDraftOptions so;
    so.type = *c.self_type;
    so.n_layers = c.self_layers;
    share_thread_pool(target_opts);  // encoding runs on the threads the sessions will use
    PLM_TRY(draft, make_self_draft(target, so, target_opts.thread_pool.get()));
    label = "self-draft " + std::string(type_traits(so.type).name);
    if (c.self_layers > 0) label += " (first " + std::to_string(c.self_layers) + " layers)";
    memory = label + ": " + mib(draft->gguf().file_size()) + " in memory";
    if (draft->repacked().count() > 0) memory += " + " + mib(draft->repacked().bytes()) + " in the x16 decode layout";
  } else {
    PLM_TRY(draft, Model::load(c.model_path));
    PLM_CHECK(check_draft_vocabulary(target.tokenizer(), draft->tokenizer(), target.gguf().path(), c.model_path));
    const size_t draft_bytes = draft->weights().total_bytes();
    if (draft_bytes >= target_bytes)
      return Error("draft model " + c.model_path + " (" + mib(draft_bytes) +
                   " of weights) is no smaller than the target " + target.gguf().path() + " (" + mib(target_bytes) +
                   "): a draft must be cheaper to run than the target");
    label = "draft model " + c.model_path;
    memory = label + ": " + mib(draft_bytes) + " of weights (" + draft->repacked().summary() + ")";
  }
  const double cost =
      static_cast<double>(draft->weights().total_bytes()) / static_cast<double>(std::max<size_t>(1, target_bytes));
  PLM_TRY(std::unique_ptr<Session> session, draft_session(target, *draft, target_opts, label));
  return std::unique_ptr<DraftSource>(
      std::make_unique<ModelDraft>(std::move(draft), std::move(session), cost, std::move(label), std::move(memory)));
}

}  // namespace pocketlm
