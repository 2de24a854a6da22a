#pragma once
// Token sampling with llama.cpp's flags, defaults and chain order:
//   penalties (repeat/frequency/presence over the last N tokens) → top-k → top-p → min-p → temperature →
//   draw. temp <= 0 is greedy (argmax over the penalized logits).
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace pocketlm {

// One token of a sampling distribution.
struct TokenProb {
  int32_t id;
  float p;
};

struct SamplerParams {
  float temp = 0.8f;
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int32_t repeat_last_n = 64;   // 0: off, -1: whole context
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint32_t seed = 0xFFFFFFFFu;  // 0xFFFFFFFF: random seed
};

class Sampler {
 public:
  explicit Sampler(SamplerParams p);
  // Picks the next token from logits (n_vocab values). Does not record it: call accept().
  int32_t sample(std::span<const float> logits);
  // The distribution sample() draws from: the tokens the chain keeps, most likely first, their
  // probabilities summing to 1 (greedy: the argmax alone, p = 1). Speculative decoding compares these.
  void distribution(std::span<const float> logits, std::vector<TokenProb>& out);
  void accept(int32_t token);  // adds to the penalty window
  uint32_t seed() const { return seed_; }
  const SamplerParams& params() const { return p_; }
  bool greedy() const { return p_.temp <= 0.0f; }
  // The sampler's random stream (seeded from seed()); a copy of the Sampler copies it.
  std::mt19937& rng() { return rng_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  void apply_penalties(std::vector<Candidate>& c) const;
  void run_chain(std::span<const float> logits);  // leaves the kept candidates in cand_, p normalised
  SamplerParams p_;
  uint32_t seed_;
  std::mt19937 rng_;
  std::deque<int32_t> history_;
  std::vector<Candidate> cand_;
};

// Draws one token from a distribution (as sample() does from its own).
int32_t draw_token(std::span<const TokenProb> dist, std::mt19937& rng);

}  // namespace pocketlm
