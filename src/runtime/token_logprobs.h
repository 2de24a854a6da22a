#pragma once
// Log-probabilities of tokens under a model's raw next-token distribution (log-softmax of the logits, before
// any sampler transform): what OpenAI's `logprobs` report and what evaluation harnesses score text with.
#include <cstdint>
#include <span>
#include <vector>

namespace pocketlm {

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // the n most likely tokens and their logprobs, most likely first
};

// log p(token) under softmax(logits), and the top_n most likely tokens (top_n <= 0: none).
TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top_n);

}  // namespace pocketlm
