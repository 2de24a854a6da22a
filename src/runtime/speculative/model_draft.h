#pragma once
// Drafting with a model: a separate small model (--draft FILE) or the target requantized in memory (a
// self-draft, self_draft.h). The draft keeps its own Session; before each round it rolls its KV cache back to
// the longest prefix it shares with the sequence (the target rejected the rest) and evaluates what it has not
// seen, then samples up to n tokens one at a time from its distribution after the target's sampler chain.
#include <memory>

#include "model/model.h"
#include "runtime/session.h"
#include "runtime/speculative/draft_source.h"

namespace pocketlm {

class ModelDraft final : public DraftSource {
 public:
  // `model` is the draft (owned); `session` a session over it; `cost_per_token` its weight bytes over the
  // target's. `label` names it in reports ("draft model x.gguf", "self-draft q4_0").
  ModelDraft(std::unique_ptr<Model> model, std::unique_ptr<Session> session, double cost_per_token, std::string label,
             std::string memory);
  ~ModelDraft() override;
  std::string name() const override { return label_; }
  double cost_per_token() const override { return cost_; }
  std::string memory_summary() const override;
  void begin(uint32_t seed) override;
  Status prepare(std::span<const int32_t> context) override;
  Status propose(std::span<const int32_t> context, int n, const DraftParams& params, const Sampler& chain,
                 Draft& out) override;
  const Model& model() const { return *model_; }
  const Session& session() const { return *session_; }

 private:
  // Rolls the cache back to the prefix it shares with `context` and evaluates the rest (at least the last
  // token): the logits after `context`. Empty when the context holds a token past the draft's vocabulary
  // or does not fit its context.
  Expected<std::span<const float>> catch_up(std::span<const int32_t> context);
  std::unique_ptr<Model> model_;
  std::unique_ptr<Session> session_;
  double cost_;
  std::string label_, memory_;
  std::vector<int32_t> cached_;  // the tokens in the draft's KV cache
  std::mt19937 rng_;
};

// Softmax probability of the most likely token (the draft's confidence, for --draft-p-min).
float top_probability(std::span<const float> logits);

}  // namespace pocketlm
