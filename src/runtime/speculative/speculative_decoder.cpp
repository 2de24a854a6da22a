#include "runtime/speculative/speculative_decoder.h"

#include <algorithm>

#include "kernels/matmul.h"
#include "util/stats.h"

namespace pocketlm {

SpeculativeDecoder::SpeculativeDecoder(Session& target, DraftSource& draft, const DraftParams& params,
                                       AcceptanceRule rule)
    : target_(target), draft_source_(draft), params_(params), rule_(rule), length_(params, draft.cost_per_token()) {}

Status SpeculativeDecoder::step(int32_t last, Sampler& sampler, std::vector<int32_t>& out) {
  out.clear();
  const int64_t n_past = target_.n_past();
  const std::span<const int32_t> held = target_.tokens();
  context_.assign(held.begin(), held.end());
  context_.push_back(last);

  // The draft, cut to what the context has room for (last and k drafted tokens are evaluated).
  const int room = static_cast<int>(std::min<int64_t>(length_.next(), target_.n_ctx() - n_past - 1));
  draft_.clear();
  const double t0 = now_seconds();
  if (room > 0) PLM_CHECK(draft_source_.propose(context_, room, params_, sampler, draft_));
  if (static_cast<int>(draft_.tokens.size()) > room) draft_.tokens.resize(static_cast<size_t>(std::max(room, 0)));
  if (static_cast<int>(draft_.tokens.size()) < params_.min) draft_.clear();
  const size_t k = draft_.tokens.size();
  const double t1 = now_seconds();

  batch_.assign(1, last);
  batch_.insert(batch_.end(), draft_.tokens.begin(), draft_.tokens.end());
  // Each row of the verification batch gets the bits a decode step of that token would: the argmax is plain
  // decoding's also at near-ties (kernels/matmul.h).
  std::span<const float> logits;
  {
    const ScopedBatchInvariance invariant;
    PLM_TRY(logits, target_.eval(batch_, /*all_logits=*/k > 0));
  }
  const size_t nv = logits.size() / batch_.size();

  Sampler chain = sampler;  // the penalty window as it grows with each accepted token
  for (size_t i = 0; i <= k; ++i) {
    chain.distribution(logits.subspan(i * nv, nv), p_);
    if (i == k) {  // every drafted token kept (or none drafted): the target's own next token
      out.push_back(draw_token(p_, sampler.rng()));
      break;
    }
    const int32_t x = draft_.tokens[i];
    const std::span<const TokenProb> q =
        draft_.q.empty() ? std::span<const TokenProb>() : std::span<const TokenProb>(draft_.q[i]);
    const Verdict v = rule_(p_, q, x, sampler.rng());
    out.push_back(v.token);
    if (!v.accepted) break;
    chain.accept(x);
  }
  const int64_t accepted = static_cast<int64_t>(out.size()) - 1;
  PLM_CHECK(target_.truncate(n_past + 1 + accepted));
  const double t2 = now_seconds();

  ++stats_.rounds;
  stats_.drafted += static_cast<int64_t>(k);
  stats_.accepted += accepted;
  stats_.draft_seconds += t1 - t0;
  stats_.verify_seconds += t2 - t1;
  if (k > 0) length_.update(static_cast<int>(k), static_cast<int>(accepted));
  return Status::Ok();
}

}  // namespace pocketlm
