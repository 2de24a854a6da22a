#include "runtime/batch_scheduler.h"

#include <algorithm>

#include "runtime/speculative/draft_setup.h"
#include "runtime/stop_matcher.h"
#include "util/stats.h"

namespace pocketlm {

struct BatchScheduler::Pending {
  uint64_t id = 0;
  SeqRequest req;
  SeqCallback cb;
  double t_queued = 0;
};

struct BatchScheduler::Slot {
  std::unique_ptr<Session> session;
  std::unique_ptr<Pending> p;  // null: the slot is free
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StopMatcher> matcher;
  int64_t fed = 0;  // prompt tokens evaluated
  bool decoding = false;
  int32_t next = -1;  // the sampled token the next step feeds
  int64_t generated = 0;
  std::vector<TokenLogprob> prompt_lp;
  double t_start = 0, t_first = 0;
  size_t kv_promised = 0;                    // KV bytes admission counted for the prompt, not yet taken
  std::unique_ptr<SpeculativeDecoder> spec;  // with a draft: this request's rounds (none when it wants logprobs)
};

BatchScheduler::BatchScheduler(const Model& model, SchedulerOptions opts) : model_(model), opts_(std::move(opts)) {}

Expected<std::unique_ptr<BatchScheduler>> BatchScheduler::create(const Model& model, SchedulerOptions opts) {
  if (opts.parallel < 1 || opts.parallel > 256)
    return Error("--parallel must be in [1, 256], got " + std::to_string(opts.parallel));
  if (opts.prefill_chunk < 1) return Error("prefill chunk must be >= 1");
  opts.step_tokens = std::clamp<int64_t>(opts.step_tokens, opts.parallel, kMaxBatch);
  if (opts.parallel > kMaxBatch) return Error("--parallel exceeds the step's token limit");
  if (opts.draft && opts.parallel != 1)
    return Error(
        "speculative decoding (a draft) needs --parallel 1: each sequence's draft is verified in a target pass of its "
        "own, which does not batch with other sequences (got --parallel " +
        std::to_string(opts.parallel) + ")");
  if (opts.draft) PLM_CHECK(check_draft_params(opts.draft_params));
  std::unique_ptr<BatchScheduler> s(new BatchScheduler(model, std::move(opts)));
  SessionOptions so = s->opts_.session;
  const ModelConfig& c = model.config();
  s->n_ctx_ = so.n_ctx > 0 ? so.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  so.n_ctx = s->n_ctx_;
  s->layout_ = kv_layout_for(c, so);
  PLM_CHECK(s->layout_.validate());
  const size_t budget = so.kv_budget > 0
                            ? so.kv_budget
                            : static_cast<size_t>(s->opts_.parallel) * kv_bytes_for_context(s->layout_, s->n_ctx_);
  if (so.kv_pool) {  // a pool made beside a draft's (make_draft_source), which the draft's cache may share
    if (so.kv_pool->block_bytes() != s->layout_.block_bytes())
      return Error("the given KV pool's blocks do not fit this model's cache");
    s->pool_ = so.kv_pool;
  } else {
    PLM_TRY(s->pool_, KvPool::create(s->layout_.block_bytes(), budget));
    so.kv_pool = s->pool_;
  }
  if (!so.thread_pool) so.thread_pool = shared_thread_pool(so.n_threads);  // one pool for every slot
  for (int i = 0; i < s->opts_.parallel; ++i) {
    auto slot = std::make_unique<Slot>();
    PLM_TRY(slot->session, Session::create(model, so));
    s->slots_.push_back(std::move(slot));
  }
  s->m_.kv_bytes_capacity = s->pool_->capacity_bytes();
  s->thread_ = std::thread([p = s.get()] { p->loop(); });
  return s;
}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  SeqEvent ev;
  ev.kind = SeqEvent::Kind::Failed;
  ev.error = SeqEvent::Error::ShuttingDown;
  ev.message = "the server is shutting down";
  for (auto& s : slots_)
    if (s->p) finish(*s, ev);
  for (auto& p : queue_) p->cb(ev);
}

Expected<uint64_t> BatchScheduler::submit(SeqRequest req, SeqCallback cb) {
  if (req.prompt.empty()) return Error("the prompt has no tokens");
  const int64_t n = static_cast<int64_t>(req.prompt.size());
  if (n >= n_ctx_)
    return Error("the prompt is " + std::to_string(n) + " tokens, which does not fit the context of " +
                 std::to_string(n_ctx_) + " tokens (at least one must be left to generate)");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= model_.config().n_vocab)
      return Error("token id " + std::to_string(t) + " is out of the vocabulary");
  if (kv_bytes_for_context(layout_, n + 1) > pool_->capacity_bytes())
    return Error("the prompt's KV cache (" + std::to_string(kv_bytes_for_context(layout_, n + 1)) +
                 " bytes) exceeds the whole KV budget (" + std::to_string(pool_->capacity_bytes()) + " bytes)");
  auto p = std::make_unique<Pending>();
  p->req = std::move(req);
  p->cb = std::move(cb);
  p->t_queued = now_seconds();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return Error("the server is shutting down");
    if (queue_.size() >= opts_.max_queue)
      return Error("the queue is full (" + std::to_string(opts_.max_queue) + " requests waiting)");
    id = p->id = next_id_++;
    queue_.push_back(std::move(p));
    m_.queued = static_cast<int>(queue_.size());
  }
  cv_.notify_all();
  return id;
}

void BatchScheduler::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancelled_.push_back(id);
  }
  cv_.notify_all();
}

SchedulerMetrics BatchScheduler::metrics() const {
  std::lock_guard<std::mutex> lk(mu_);
  SchedulerMetrics m = m_;
  m.kv_bytes_used = pool_->bytes_used();
  m.kv_peak_bytes = pool_->peak_used() * pool_->block_bytes();
  return m;
}

bool BatchScheduler::admit_locked() {
  size_t promised = 0;
  for (auto& s : slots_) promised += s->p ? s->kv_promised : 0;
  bool any = false;
  while (!queue_.empty()) {
    auto free_slot = std::find_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s->p; });
    if (free_slot == slots_.end()) break;
    const SeqRequest& r = queue_.front()->req;
    const size_t need = kv_bytes_for_context(layout_, static_cast<int64_t>(r.prompt.size()) + 1);
    const size_t free_bytes = pool_->capacity_bytes() - pool_->bytes_used();
    if (need + promised > free_bytes) break;  // waits (first come, first served) until sequences end
    Slot& s = **free_slot;
    s.p = std::move(queue_.front());
    queue_.pop_front();
    s.session->reset();
    s.sampler = std::make_unique<Sampler>(s.p->req.sampling);
    for (int32_t t : s.p->req.prompt) s.sampler->accept(t);  // the penalty window sees the prompt, as in `run`
    s.matcher = std::make_unique<StopMatcher>(s.p->req.stop);
    s.fed = 0;
    s.decoding = false;
    s.next = -1;
    s.generated = 0;
    s.prompt_lp.clear();
    s.t_start = now_seconds();
    s.t_first = 0;
    s.kv_promised = need;
    s.spec.reset();
    if (opts_.draft && s.p->req.top_logprobs < 0) {  // logprobs need the target's logits of every token: plain
      opts_.draft->begin(s.sampler->seed());
      s.spec = std::make_unique<SpeculativeDecoder>(*s.session, *opts_.draft, opts_.draft_params);
    }
    promised += need;
    any = true;
  }
  m_.queued = static_cast<int>(queue_.size());
  return any;
}

void BatchScheduler::finish(Slot& s, const SeqEvent& ev_in) {
  SeqEvent ev = ev_in;
  const double now = now_seconds();
  ev.prompt_tokens = static_cast<int64_t>(s.p->req.prompt.size());
  ev.completion_tokens = s.generated;
  ev.queue_seconds = s.t_start - s.p->t_queued;
  ev.prompt_seconds = (s.t_first > 0 ? s.t_first : now) - s.t_start;
  ev.decode_seconds = s.t_first > 0 ? now - s.t_first : 0;
  if (s.p->req.prompt_logprobs) ev.prompt_logprobs = &s.prompt_lp;
  s.session->reset();  // its blocks go back to the pool before the client hears of the end
  s.kv_promised = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (ev.kind == SeqEvent::Kind::Failed)
      ++m_.requests_failed;
    else
      ++m_.requests_done;
    if (ev.kind == SeqEvent::Kind::Done && ev.stop == StopReason::Callback) ++m_.requests_cancelled;
    --m_.active;
    m_.generated_tokens += s.generated;
    m_.prompt_tokens += ev.prompt_tokens;
  }
  s.p->cb(ev);
  s.p.reset();
}

void BatchScheduler::loop() {
  for (;;) {
    std::vector<std::unique_ptr<Pending>> dropped;
    std::vector<uint64_t> cancelled;
    {
      std::unique_lock<std::mutex> lk(mu_);
      const auto active = [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->p != nullptr; });
      };
      cv_.wait(lk, [&] { return stop_ || !cancelled_.empty() || active() || !queue_.empty(); });
      if (stop_) return;
      cancelled.swap(cancelled_);
      for (uint64_t id : cancelled)
        for (auto it = queue_.begin(); it != queue_.end(); ++it)
          if ((*it)->id == id) {
            dropped.push_back(std::move(*it));
            queue_.erase(it);
            break;
          }
      admit_locked();
      m_.active =
          static_cast<int>(std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return s->p != nullptr; }));
      if (!active() && cancelled.empty() && dropped.empty() && !queue_.empty()) {
        // Nothing runs and the head still does not fit: only possible when the budget is too small for it.
        dropped.push_back(std::move(queue_.front()));
        queue_.pop_front();
        SeqEvent ev;
        ev.kind = SeqEvent::Kind::Failed;
        ev.error = SeqEvent::Error::KvExhausted;
        ev.message = "the KV budget cannot hold this prompt";
        lk.unlock();
        dropped.back()->cb(ev);
        dropped.pop_back();
        continue;
      }
    }
    SeqEvent gone;
    gone.kind = SeqEvent::Kind::Done;
    gone.stop = StopReason::Callback;
    for (auto& p : dropped) p->cb(gone);
    for (uint64_t id : cancelled)
      for (auto& s : slots_)
        if (s->p && s->p->id == id) finish(*s, gone);
    step();
  }
}

void BatchScheduler::step() {
  // With a draft (one slot): a decoding sequence advances by a speculative round instead of one token.
  if (opts_.draft && slots_[0]->p && slots_[0]->decoding && slots_[0]->spec) return speculative_round(*slots_[0]);
  std::vector<Slot*> order;
  std::vector<BatchItem> items;
  std::vector<int64_t> counts;
  int64_t budget = opts_.step_tokens;
  // Decode tokens first (one each), then prompt chunks in the room left.
  for (auto& s : slots_)
    if (s->p && s->decoding) {
      order.push_back(s.get());
      items.push_back({s->session.get(), std::span<const int32_t>(&s->next, 1), false});
      --budget;
    }
  for (auto& s : slots_)
    if (s->p && !s->decoding && budget > 0) {
      const int64_t left = static_cast<int64_t>(s->p->req.prompt.size()) - s->fed;
      const int64_t n = std::min({opts_.prefill_chunk, left, budget});
      order.push_back(s.get());
      items.push_back(
          {s->session.get(),
           std::span<const int32_t>(s->p->req.prompt).subspan(static_cast<size_t>(s->fed), static_cast<size_t>(n)),
           s->p->req.prompt_logprobs});
      budget -= n;
    }
  if (items.empty()) return;
  // KV first, per sequence: one the pool cannot grow ends alone, the others go on.
  for (size_t i = 0; i < items.size();) {
    const Status st = items[i].session->reserve(static_cast<int64_t>(items[i].tokens.size()));
    if (st.ok()) {
      ++i;
      continue;
    }
    SeqEvent ev;
    ev.kind = SeqEvent::Kind::Failed;
    ev.error = SeqEvent::Error::KvExhausted;
    ev.message = st.error().message();
    finish(*order[i], ev);
    order.erase(order.begin() + static_cast<std::ptrdiff_t>(i));
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (items.empty()) return;
  std::vector<std::span<const float>> logits;
  const double t0 = now_seconds();
  const Status st = Session::eval_batch(items, logits);
  const double t1 = now_seconds();
  int64_t rows = 0;
  for (const BatchItem& it : items) rows += static_cast<int64_t>(it.tokens.size());
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++m_.steps;
    m_.step_rows += rows;
    m_.busy_seconds += t1 - t0;
  }
  if (!st.ok()) {
    SeqEvent ev;
    ev.kind = SeqEvent::Kind::Failed;
    ev.error = SeqEvent::Error::Internal;
    ev.message = st.error().message();
    for (Slot* s : order) finish(*s, ev);
    return;
  }
  const size_t nv = static_cast<size_t>(model_.config().n_vocab);
  for (size_t i = 0; i < order.size(); ++i) {
    Slot& s = *order[i];
    const SeqRequest& r = s.p->req;
    std::span<const float> last = logits[i];
    if (!s.decoding) {
      const int64_t n = static_cast<int64_t>(items[i].tokens.size());
      if (r.prompt_logprobs)
        for (int64_t t = 0; t < n; ++t) {
          const int64_t pos = s.fed + t;
          if (pos + 1 < static_cast<int64_t>(r.prompt.size()))
            s.prompt_lp.push_back(token_logprob(logits[i].subspan(static_cast<size_t>(t) * nv, nv),
                                                r.prompt[static_cast<size_t>(pos + 1)], std::max(r.top_logprobs, 0)));
        }
      s.fed += n;
      s.kv_promised = 0;
      if (s.fed < static_cast<int64_t>(r.prompt.size())) continue;
      if (r.prompt_logprobs) last = logits[i].subspan(static_cast<size_t>(n - 1) * nv, nv);
      s.decoding = true;
      s.t_first = now_seconds();
      if (r.max_tokens == 0) {
        SeqEvent ev;
        ev.kind = SeqEvent::Kind::Done;
        ev.stop = StopReason::MaxTokens;
        finish(s, ev);
        continue;
      }
    }
    // Sample and emit one token, as the generate loop does.
    emit(s, s.sampler->sample(last), last, s.session->n_past());
  }
}

bool BatchScheduler::emit(Slot& s, int32_t t, std::span<const float> logits, int64_t n_past) {
  const Tokenizer& tok = model_.tokenizer();
  const SeqRequest& r = s.p->req;
  SeqEvent done;
  done.kind = SeqEvent::Kind::Done;
  bool end = false;
  TokenLogprob eog_lp;
  if (!r.ignore_eos && tok.is_eog(t)) {
    done.stop = StopReason::EndOfGeneration;
    done.token = t;
    if (r.top_logprobs >= 0 && !logits.empty()) {
      eog_lp = token_logprob(logits, t, r.top_logprobs);
      done.logprob = &eog_lp;
    }
    end = true;
  } else {
    s.sampler->accept(t);
    ++s.generated;
    const bool stopped = s.matcher->add(tok.token_to_piece(t));
    SeqEvent ev;
    ev.kind = SeqEvent::Kind::Token;
    ev.token = t;
    ev.text = s.matcher->release(stopped);
    TokenLogprob lp;
    if (r.top_logprobs >= 0 && !logits.empty()) {
      lp = token_logprob(logits, t, r.top_logprobs);
      ev.logprob = &lp;
    }
    if (!s.p->cb(ev)) {
      done.stop = StopReason::Callback;
      end = true;
    } else if (stopped) {
      done.stop = StopReason::StopString;
      end = true;
    } else if (r.max_tokens >= 0 && s.generated >= r.max_tokens) {
      done.stop = StopReason::MaxTokens;
      end = true;
    } else if (n_past >= s.session->n_ctx()) {
      done.stop = StopReason::ContextFull;
      end = true;
    }
    s.next = t;
  }
  if (!end) return false;
  if (done.stop != StopReason::StopString && done.stop != StopReason::Callback) {
    const std::string_view rest = s.matcher->release(/*all=*/true);
    if (!rest.empty()) {
      SeqEvent ev;
      ev.kind = SeqEvent::Kind::Token;
      ev.text = rest;
      s.p->cb(ev);
    }
  }
  finish(s, done);
  return true;
}

void BatchScheduler::speculative_round(Slot& s) {
  const int64_t n_past = s.session->n_past();
  const SpeculativeStats before = s.spec->stats();
  const double t0 = now_seconds();
  const Status st = s.spec->step(s.next, *s.sampler, round_);
  const double t1 = now_seconds();
  const SpeculativeStats& after = s.spec->stats();
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++m_.steps;
    m_.step_rows += 1 + (after.drafted - before.drafted);
    m_.busy_seconds += t1 - t0;
    m_.draft_tokens += after.drafted - before.drafted;
    m_.draft_accepted += after.accepted - before.accepted;
  }
  if (!st.ok()) {
    SeqEvent ev;
    ev.kind = SeqEvent::Kind::Failed;
    const bool kv = pool_->bytes_used() + pool_->block_bytes() > pool_->capacity_bytes();
    ev.error = kv ? SeqEvent::Error::KvExhausted : SeqEvent::Error::Internal;
    ev.message = st.error().message();
    finish(s, ev);
    return;
  }
  // Token i of the round is where plain decoding would be after i + 1 more steps: the context check is its.
  for (size_t i = 0; i < round_.size(); ++i)
    if (emit(s, round_[i], {}, n_past + 1 + static_cast<int64_t>(i))) return;
}

}  // namespace pocketlm
