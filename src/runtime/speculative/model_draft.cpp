#include "runtime/speculative/model_draft.h"

#include <algorithm>
#include <cmath>

namespace pocketlm {

ModelDraft::ModelDraft(std::unique_ptr<Model> model, std::unique_ptr<Session> session, double cost_per_token,
                       std::string label, std::string memory)
    : model_(std::move(model)),
      session_(std::move(session)),
      cost_(cost_per_token),
      label_(std::move(label)),
      memory_(std::move(memory)) {}

// The session goes first: its KV blocks return to a pool the target may share.
ModelDraft::~ModelDraft() { session_.reset(); }

std::string ModelDraft::memory_summary() const { return memory_; }

void ModelDraft::begin(uint32_t seed) { rng_.seed(seed ^ 0x5bd1e995u); }

float top_probability(std::span<const float> logits) {
  if (logits.empty()) return 0.0f;
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  return static_cast<float>(1.0 / sum);
}

Expected<std::span<const float>> ModelDraft::catch_up(std::span<const int32_t> context) {
  // A target token the draft's (smaller) vocabulary lacks cannot be fed to it: no draft from here on.
  const int64_t n_vocab = model_->config().n_vocab;
  if (context.empty() || static_cast<int64_t>(context.size()) >= session_->n_ctx() ||
      std::any_of(context.begin(), context.end(), [&](int32_t t) { return t < 0 || t >= n_vocab; }))
    return std::span<const float>();
  // Roll back to the prefix shared with the sequence; the last token is always evaluated again for its logits.
  size_t keep = static_cast<size_t>(
      std::mismatch(cached_.begin(), cached_.end(), context.begin(), context.end()).first - cached_.begin());
  keep = std::min(keep, context.size() - 1);
  if (!session_->truncate(static_cast<int64_t>(keep))) {
    session_->reset();  // a sliding-window layer already dropped what position `keep` needs
    keep = 0;
  }
  cached_.resize(keep);
  PLM_TRY(std::span<const float> logits, session_->eval(context.subspan(keep)));
  cached_.assign(context.begin(), context.end());
  return logits;
}

Status ModelDraft::prepare(std::span<const int32_t> context) {
  PLM_TRY(std::span<const float> logits, catch_up(context));
  (void)logits;
  return Status::Ok();
}

Status ModelDraft::propose(std::span<const int32_t> context, int n, const DraftParams& params, const Sampler& chain,
                           Draft& out) {
  out.clear();
  if (n <= 0) return Status::Ok();
  PLM_TRY(std::span<const float> logits, catch_up(context));
  if (logits.empty()) return Status::Ok();
  n = static_cast<int>(std::min<int64_t>(n, session_->n_ctx() - static_cast<int64_t>(context.size()) + 1));
  Sampler draft_chain = chain;  // same parameters and penalty window; its random stream is not used
  for (int i = 0; i < n; ++i) {
    if (params.p_min > 0 && top_probability(logits) < params.p_min) break;
    out.q.emplace_back();
    draft_chain.distribution(logits, out.q.back());
    const int32_t x = draw_token(out.q.back(), rng_);
    out.tokens.push_back(x);
    if (i + 1 == n) break;
    draft_chain.accept(x);
    PLM_TRY(logits, session_->eval(std::span<const int32_t>(&x, 1)));
    cached_.push_back(x);
  }
  return Status::Ok();
}

}  // namespace pocketlm
