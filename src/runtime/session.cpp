#include "runtime/session.h"

#include <algorithm>

#include "model/arch/forward.h"
#include "runtime/kv_cache.h"

namespace pocketlm {

struct Session::State {
  State(const ModelConfig& c, int64_t n_ctx, KvType type, int threads)
      : kv(c.n_layer, n_ctx, c.n_head_kv * c.head_dim, type, layer_windows(c)), pool(threads), forward(forward_for(c)) {}
  static std::vector<int64_t> layer_windows(const ModelConfig& c) {
    std::vector<int64_t> w(static_cast<size_t>(c.n_layer));
    for (int64_t il = 0; il < c.n_layer; ++il) w[static_cast<size_t>(il)] = c.window(il);
    return w;
  }
  KvCache kv;
  ThreadPool pool;
  ForwardFn forward;
  ForwardScratch scratch;
  std::vector<float> all_logits;
};

inline constexpr int64_t kMaxBatch = 512;  // prompt tokens per forward call

Session::~Session() = default;

Expected<std::unique_ptr<Session>> Session::create(const Model& model, SessionOptions opts) {
  const ModelConfig& c = model.config();
  int64_t n_ctx = opts.n_ctx > 0 ? opts.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  if (n_ctx > (1 << 20)) return Error("context size " + std::to_string(n_ctx) + " is too large (max 1048576)");
  std::unique_ptr<Session> s(new Session());
  s->model_ = &model;
  s->n_ctx_ = n_ctx;
  const int threads = opts.n_threads > 0 ? opts.n_threads : physical_cores();
  s->st_ = std::make_unique<State>(c, n_ctx, opts.kv_type, threads);
  return s;
}

size_t Session::kv_bytes() const { return st_->kv.bytes(); }

Expected<std::span<const float>> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const ModelConfig& c = model_->config();
  if (tokens.empty()) return Error("eval: no tokens");
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_)
    return Error("context overflow: " + std::to_string(n_past_) + " tokens in the cache + " + std::to_string(tokens.size()) +
                 " new > context size " + std::to_string(n_ctx_) + " (raise -c)");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.n_vocab) return Error("token id " + std::to_string(t) + " out of range [0, " + std::to_string(c.n_vocab) + ")");

  const size_t nv = static_cast<size_t>(c.n_vocab);
  if (all_logits) st_->all_logits.resize(tokens.size() * nv);
  for (size_t b = 0; b < tokens.size(); b += kMaxBatch) {
    const size_t n = std::min<size_t>(kMaxBatch, tokens.size() - b);
    const bool last = b + n == tokens.size();
    const Logits which = all_logits ? Logits::All : last ? Logits::Last : Logits::None;
    st_->forward(*model_, tokens.subspan(b, n), n_past_, which, st_->kv, st_->scratch, st_->pool);
    n_past_ += static_cast<int64_t>(n);
    if (all_logits)
      std::copy(st_->scratch.logits.begin(), st_->scratch.logits.begin() + static_cast<std::ptrdiff_t>(n * nv),
                st_->all_logits.begin() + static_cast<std::ptrdiff_t>(b * nv));
  }
  if (all_logits) return std::span<const float>(st_->all_logits);
  return std::span<const float>(st_->scratch.logits.data(), nv);
}

}  // namespace pocketlm
