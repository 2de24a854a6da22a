#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace pocketlm {

Sampler::Sampler(SamplerParams p) : p_(p) {
  seed_ = p.seed == 0xFFFFFFFFu ? std::random_device{}() : p.seed;
  rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
  history_.push_back(token);
  const size_t keep = p_.repeat_last_n < 0 ? SIZE_MAX : static_cast<size_t>(p_.repeat_last_n);
  while (history_.size() > keep) history_.pop_front();
}

void Sampler::apply_penalties(std::vector<Candidate>& c) const {
  if (p_.repeat_last_n == 0 || history_.empty()) return;
  if (p_.repeat_penalty == 1.0f && p_.frequency_penalty == 0.0f && p_.presence_penalty == 0.0f) return;
  std::unordered_map<int32_t, int> counts;
  for (int32_t t : history_) ++counts[t];
  for (const auto& [id, n] : counts) {
    if (id < 0 || static_cast<size_t>(id) >= c.size()) continue;
    float& l = c[static_cast<size_t>(id)].logit;
    // As llama.cpp: divide positive logits by the penalty, multiply negative ones.
    l = l <= 0 ? l * p_.repeat_penalty : l / p_.repeat_penalty;
    l -= static_cast<float>(n) * p_.frequency_penalty + (n > 0 ? 1.0f : 0.0f) * p_.presence_penalty;
  }
}

void Sampler::run_chain(std::span<const float> logits) {
  cand_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  apply_penalties(cand_);

  if (p_.temp <= 0.0f) {
    // Greedy: first maximum, as llama.cpp's argmax.
    size_t best = 0;
    for (size_t i = 1; i < cand_.size(); ++i)
      if (cand_[i].logit > cand_[best].logit) best = i;
    cand_[0] = {cand_[best].id, cand_[best].logit, 1.0f};
    cand_.resize(1);
    return;
  }

  auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; };
  size_t n = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = static_cast<size_t>(p_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  cand_.resize(n);
  auto softmax = [&] {
    const float max = cand_[0].logit;
    double sum = 0;
    for (auto& x : cand_) sum += (x.p = std::exp(x.logit - max));
    for (auto& x : cand_) x.p = static_cast<float>(x.p / sum);
  };
  softmax();
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand_.resize(std::max<size_t>(keep, 1));
  }
  if (p_.min_p > 0.0f) {
    const float threshold = cand_[0].logit + std::log(p_.min_p);
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].logit >= threshold) ++keep;
    cand_.resize(keep);
  }
  for (auto& x : cand_) x.logit /= p_.temp;
  softmax();
}

int32_t Sampler::sample(std::span<const float> logits) {
  run_chain(logits);
  if (p_.temp <= 0.0f) return cand_[0].id;
  std::vector<float> weights(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i) weights[i] = cand_[i].p;
  std::discrete_distribution<size_t> dist(weights.begin(), weights.end());
  return cand_[dist(rng_)].id;
}

void Sampler::distribution(std::span<const float> logits, std::vector<TokenProb>& out) {
  run_chain(logits);
  out.resize(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i) out[i] = {cand_[i].id, cand_[i].p};
}

int32_t draw_token(std::span<const TokenProb> dist, std::mt19937& rng) {
  if (dist.size() == 1) return dist[0].id;
  std::vector<float> weights(dist.size());
  for (size_t i = 0; i < dist.size(); ++i) weights[i] = dist[i].p;
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  return dist[pick(rng)].id;
}

}  // namespace pocketlm
