#include "runtime/session.h"

#include <algorithm>

#include "model/arch/forward.h"
#include "model/kv_cache.h"

namespace pocketlm {

struct Session::State {
  State(std::unique_ptr<KvCache> cache, std::shared_ptr<ThreadPool> threads, ForwardFn f)
      : kv(std::move(cache)), pool(std::move(threads)), forward(f) {}
  std::unique_ptr<KvCache> kv;
  std::shared_ptr<ThreadPool> pool;
  std::vector<int32_t> tokens;
  ForwardFn forward;
  ForwardScratch scratch;
  std::vector<float> all_logits;
};

KvLayout kv_layout_for(const ModelConfig& c, const SessionOptions& opts) {
  KvLayout l;
  l.n_layer = c.n_layer;
  l.n_head_kv = c.n_head_kv;
  l.head_dim = c.head_dim;
  l.type_k = opts.kv_type;
  l.type_v = opts.kv_type_v.value_or(opts.kv_type);
  l.block_tokens = opts.kv_block;
  l.windows.resize(static_cast<size_t>(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) l.windows[static_cast<size_t>(il)] = c.window(il);
  return l;
}

size_t kv_bytes_for_context(const KvLayout& layout, int64_t n_ctx) {
  int64_t blocks = 0;
  for (int64_t il = 0; il < layout.n_layer; ++il) blocks += layout.max_blocks(il, n_ctx, kMaxBatch);
  return static_cast<size_t>(blocks) * layout.block_bytes();
}

Session::~Session() = default;

Expected<std::unique_ptr<Session>> Session::create(const Model& model, SessionOptions opts) {
  const ModelConfig& c = model.config();
  int64_t n_ctx = opts.n_ctx > 0 ? opts.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  if (n_ctx > (1 << 20)) return Error("context size " + std::to_string(n_ctx) + " is too large (max 1048576)");
  const KvLayout layout = kv_layout_for(c, opts);
  PLM_CHECK(layout.validate());
  std::shared_ptr<KvPool> kv_pool = opts.kv_pool;
  if (kv_pool) {
    if (kv_pool->block_bytes() != layout.block_bytes())
      return Error("shared KV pool has " + std::to_string(kv_pool->block_bytes()) +
                   "-byte blocks, this model and cache types need " + std::to_string(layout.block_bytes()));
  } else {
    const size_t budget = opts.kv_budget > 0 ? opts.kv_budget : kv_bytes_for_context(layout, n_ctx);
    PLM_TRY(kv_pool, KvPool::create(layout.block_bytes(), budget));
  }
  std::unique_ptr<Session> s(new Session());
  s->model_ = &model;
  s->n_ctx_ = n_ctx;
  std::shared_ptr<ThreadPool> threads = opts.thread_pool ? opts.thread_pool : shared_thread_pool(opts.n_threads);
  s->st_ = std::make_unique<State>(std::make_unique<KvCache>(layout, n_ctx, std::move(kv_pool)), std::move(threads),
                                   forward_for(c));
  return s;
}

size_t Session::kv_bytes() const { return st_->kv->bytes_held(); }
const KvCache& Session::kv_cache() const { return *st_->kv; }

std::span<const int32_t> Session::tokens() const { return st_->tokens; }

void Session::reset() {
  st_->kv->clear();
  st_->tokens.clear();
  n_past_ = 0;
}

Status Session::truncate(int64_t n) {
  if (n >= n_past_) return Status::Ok();
  PLM_CHECK(st_->kv->truncate(n));
  n_past_ = std::max<int64_t>(0, n);
  st_->tokens.resize(static_cast<size_t>(n_past_));
  return Status::Ok();
}

Status Session::reserve(int64_t n) {
  if (n_past_ + n > n_ctx_)
    return Error("context overflow: " + std::to_string(n_past_) + " tokens in the cache + " + std::to_string(n) +
                 " new > context size " + std::to_string(n_ctx_));
  return st_->kv->reserve(n_past_, n);
}

Status Session::eval_batch(std::span<const BatchItem> items, std::vector<std::span<const float>>& out) {
  out.clear();
  if (items.empty()) return Error("eval_batch: no items");
  Session& first = *items[0].session;
  const Model& model = *first.model_;
  const ModelConfig& c = model.config();
  std::vector<int32_t> tokens;
  std::vector<SeqSlice> seqs;
  for (const BatchItem& it : items) {
    Session& s = *it.session;
    if (s.model_ != &model) return Error("eval_batch: the sessions must share one model");
    if (it.tokens.empty()) return Error("eval_batch: an item has no tokens");
    for (const BatchItem& other : items)
      if (&other != &it && other.session == it.session) return Error("eval_batch: a session appears twice");
    if (s.n_past_ + static_cast<int64_t>(it.tokens.size()) > s.n_ctx_)
      return Error("context overflow: " + std::to_string(s.n_past_) + " tokens in the cache + " +
                   std::to_string(it.tokens.size()) + " new > context size " + std::to_string(s.n_ctx_));
    for (int32_t t : it.tokens)
      if (t < 0 || t >= c.n_vocab)
        return Error("token id " + std::to_string(t) + " out of range [0, " + std::to_string(c.n_vocab) + ")");
    tokens.insert(tokens.end(), it.tokens.begin(), it.tokens.end());
    seqs.push_back({s.st_->kv.get(), s.n_past_, static_cast<int64_t>(it.tokens.size()),
                    it.all_logits ? Logits::All : Logits::Last});
  }
  if (static_cast<int64_t>(tokens.size()) > kMaxBatch)
    return Error("eval_batch: " + std::to_string(tokens.size()) + " tokens > " + std::to_string(kMaxBatch) +
                 " per step");
  // KV for every item, or for none: a pool too full for one item takes nothing from any.
  for (size_t i = 0; i < items.size(); ++i) {
    Status st = items[i].session->st_->kv->reserve(seqs[i].pos0, seqs[i].n);
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) (void)items[j].session->st_->kv->truncate(seqs[j].pos0);
      return st;
    }
  }
  State& st = *first.st_;
  st.forward(model, tokens, seqs, st.scratch, *st.pool);
  const size_t nv = static_cast<size_t>(c.n_vocab);
  size_t row = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    Session& s = *items[i].session;
    const size_t rows = items[i].all_logits ? items[i].tokens.size() : 1;
    out.emplace_back(st.scratch.logits.data() + row * nv, rows * nv);
    row += rows;
    s.n_past_ += static_cast<int64_t>(items[i].tokens.size());
    s.st_->tokens.insert(s.st_->tokens.end(), items[i].tokens.begin(), items[i].tokens.end());
  }
  return Status::Ok();
}

Expected<std::span<const float>> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& c = model_->config();
  if (tokens.empty()) return Error("eval: no tokens");
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_)
    return Error("context overflow: " + std::to_string(n_past_) + " tokens in the cache + " +
                 std::to_string(tokens.size()) + " new > context size " + std::to_string(n_ctx_) + " (raise -c)");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.n_vocab)
      return Error("token id " + std::to_string(t) + " out of range [0, " + std::to_string(c.n_vocab) + ")");

  const size_t nv = static_cast<size_t>(c.n_vocab);
  if (all_logits) st_->all_logits.resize(tokens.size() * nv);
  for (size_t b = 0; b < tokens.size(); b += kMaxBatch) {
    const size_t n = std::min<size_t>(kMaxBatch, tokens.size() - b);
    const bool last = b + n == tokens.size();
    const Logits which = all_logits ? Logits::All : last ? Logits::Last : Logits::None;
    // A full pool stops here, before anything is written: the tokens so far stay usable.
    PLM_CHECK(st_->kv->reserve(n_past_, static_cast<int64_t>(n)));
    const SeqSlice seq{st_->kv.get(), n_past_, static_cast<int64_t>(n), which};
    st_->forward(*model_, tokens.subspan(b, n), std::span<const SeqSlice>(&seq, 1), st_->scratch, *st_->pool);
    n_past_ += static_cast<int64_t>(n);
    st_->tokens.insert(st_->tokens.end(), tokens.begin() + static_cast<std::ptrdiff_t>(b),
                       tokens.begin() + static_cast<std::ptrdiff_t>(b + n));
    if (all_logits)
      std::copy(st_->scratch.logits.begin(), st_->scratch.logits.begin() + static_cast<std::ptrdiff_t>(n * nv),
                st_->all_logits.begin() + static_cast<std::ptrdiff_t>(b * nv));
  }
  if (all_logits) return std::span<const float>(st_->all_logits);
  return std::span<const float>(st_->scratch.logits.data(), nv);
}

}  // namespace pocketlm
