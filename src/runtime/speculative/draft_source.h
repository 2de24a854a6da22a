#pragma once
// A draft source proposes the tokens speculative decoding asks the target to check: a smaller model, the
// target requantized to a low-bit type (a self-draft), or n-gram lookup in the text so far. The target then
// scores every proposal in one batched forward pass (runtime/speculative/speculative_decoder.h).
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "util/error.h"

namespace pocketlm {

// How many tokens to draft per round (llama.cpp's --draft-max, --draft-min, --draft-p-min).
struct DraftParams {
  int32_t max = 16;      // at most this many tokens per round (>= 1)
  int32_t min = 0;       // a draft shorter than this is dropped (the round decodes one token plainly)
  float p_min = 0.0f;    // a model draft stops when its most likely token has a probability below this
  bool adaptive = true;  // choose the length of each round from the running acceptance rate (draft_length.h)
};

// The tokens a source proposed, and for a model draft the distribution each was drawn from (after the same
// sampler chain as the target's). A deterministic draft (lookup) leaves q empty: each token is a point mass.
struct Draft {
  std::vector<int32_t> tokens;
  std::vector<std::vector<TokenProb>> q;
  void clear() {
    tokens.clear();
    q.clear();
  }
};

class DraftSource {
 public:
  virtual ~DraftSource() = default;
  // What drafts: "draft model tiny.gguf", "self-draft q4_0 (30 layers)", "lookup (n-grams 1..4)".
  virtual std::string name() const = 0;
  // The cost of drafting one token relative to one target decode step (bytes of weights read per token;
  // decoding on a phone is memory-bound). 0 for lookup. Steers the adaptive draft length.
  virtual double cost_per_token() const = 0;
  // Weights and KV cache the source holds beyond the target's, for memory reports ("" when none).
  virtual std::string memory_summary() const { return ""; }
  // Starts a generation: the source draws its own random numbers (never the target's) from a stream derived
  // from the sampler's seed.
  virtual void begin(uint32_t seed) { (void)seed; }
  // Takes in a prompt the target has just evaluated (a model draft evaluates it too), so that the first
  // round's drafting is not charged with the draft's prefill. Optional: propose() catches up on its own.
  virtual Status prepare(std::span<const int32_t> context) {
    (void)context;
    return Status::Ok();
  }
  // Proposes up to n tokens continuing `context` (the whole sequence so far: every token the target holds
  // and the one it will evaluate next). `chain` is the target's sampler at that point: a model draft applies
  // the same chain (parameters and penalty window) to its own logits. Fewer tokens, or none, are fine.
  virtual Status propose(std::span<const int32_t> context, int n, const DraftParams& params, const Sampler& chain,
                         Draft& out) = 0;
};

}  // namespace pocketlm
