#pragma once
// Per-position arithmetic of perplexity and KL divergence, done the way llama-perplexity does it so the
// figures are comparable with llama.cpp's (see docs/evaluation.md):
//  - softmax over float logits with the maximum subtracted, expf per entry, the sum accumulated in double;
//  - a base model's distribution is kept as a "quantized log-prob row": the log-probs within 16 nats of the
//    maximum, mapped linearly onto uint16 (65535 steps of at most 16/65535 nats), plus a float scale and the
//    float log-prob of code 0; entries further than 16 nats below the maximum are code 0 and count as absent
//    in the KL sum. The row layout is byte for byte llama.cpp's (--kl-divergence-base files).
#include <cstddef>
#include <cstdint>
#include <span>

namespace pocketlm::eval {

// -log p(tok) of one logit row, in double (perplexity mode).
double token_nll(std::span<const float> logits, int32_t tok);

// Bytes of one quantized log-prob row for a vocabulary: 8 (scale, min) + 2 per entry, padded to an even
// entry count: 8 + 2 * (n_vocab rounded up to even).
size_t log_prob_row_bytes(int64_t n_vocab);

// Writes the quantized log-probs of `logits` into `row` (log_prob_row_bytes(n) bytes, any alignment) and
// returns -log p(tok) as llama.cpp computes it while saving (float precision).
double encode_log_prob_row(std::span<const float> logits, int32_t tok, uint8_t* row);

// The decoded log-prob of entry i of an encoded row.
float decode_log_prob(const uint8_t* row, int64_t i);

// One position scored against a base row.
struct KlPosition {
  double kld = 0;         // KL(base || model), nats, over the base entries above -16 nats
  float nll = 0;          // -log p_model(tok)
  float nll_base = 0;     // -log p_base(tok), from the quantized row
  float p_diff = 0;       // p_model(tok) - p_base(tok)
  bool same_top = false;  // argmax of the model's logits == argmax of the base row (first index on ties)
};
KlPosition kl_position(std::span<const float> logits, const uint8_t* base_row, int32_t tok);

}  // namespace pocketlm::eval
