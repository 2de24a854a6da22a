#include "eval/log_probs.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pocketlm::eval {
namespace {

constexpr float kLogProbRange = 16.0f;  // nats kept below the maximum
constexpr float kCodes = 65535.0f;

float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void store_f32(uint8_t* p, float v) { std::memcpy(p, &v, sizeof v); }
void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof v); }

// max and the double sum of expf(l - max): the softmax denominator as llama.cpp accumulates it.
double sum_exp_below(std::span<const float> logits, float max_logit) {
  double sum = 0.0;
  for (const float l : logits) sum += static_cast<double>(std::exp(l - max_logit));
  return sum;
}

}  // namespace

double token_nll(std::span<const float> logits, int32_t tok) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  const double sum = sum_exp_below(logits, max_logit);
  const float centred = logits[static_cast<size_t>(tok)] - max_logit;
  return -(static_cast<double>(centred) - std::log(sum));
}

size_t log_prob_row_bytes(int64_t n_vocab) { return 8 + 2 * static_cast<size_t>((n_vocab + 1) / 2 * 2); }

double encode_log_prob_row(std::span<const float> logits, int32_t tok, uint8_t* row) {
  const auto [lo, hi] = std::minmax_element(logits.begin(), logits.end());
  const float max_logit = *hi;
  const float floor_logit = std::max(*lo, max_logit - kLogProbRange);
  const float log_sum_exp = static_cast<float>(std::log(sum_exp_below(logits, max_logit)));
  const float scale = (max_logit - floor_logit) / kCodes;
  store_f32(row, scale);
  store_f32(row + 4, floor_logit - max_logit - log_sum_exp);
  uint8_t* codes = row + 8;
  const size_t n = logits.size();
  const size_t padded = (n + 1) / 2 * 2;
  std::memset(codes, 0, 2 * padded);
  if (scale != 0.0f) {
    const float inv = 1.0f / scale;
    for (size_t i = 0; i < n; ++i) {
      if (logits[i] > floor_logit)  // round to nearest, ties to even
        store_u16(codes + 2 * i, static_cast<uint16_t>(std::lrint(inv * (logits[i] - floor_logit))));
    }
  }
  return static_cast<double>(max_logit + log_sum_exp - logits[static_cast<size_t>(tok)]);
}

float decode_log_prob(const uint8_t* row, int64_t i) {
  return load_f32(row) * static_cast<float>(load_u16(row + 8 + 2 * i)) + load_f32(row + 4);
}

KlPosition kl_position(std::span<const float> logits, const uint8_t* base_row, int32_t tok) {
  KlPosition r;
  size_t top = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[top]) top = i;
  const float max_logit = logits[top];
  const float log_sum_exp = static_cast<float>(std::log(sum_exp_below(logits, max_logit)));
  const float scale = load_f32(base_row), min_log_prob = load_f32(base_row + 4);
  const uint8_t* codes = base_row + 8;
  const size_t t = static_cast<size_t>(tok);
  r.nll = max_logit + log_sum_exp - logits[t];
  r.nll_base = -(scale * static_cast<float>(load_u16(codes + 2 * t)) + min_log_prob);

  const float log_norm = max_logit + log_sum_exp;  // log p_model(i) = logits[i] - log_norm
  double sum = 0.0;
  size_t top_base = 0;
  float top_base_lp = 0.0f;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float lp_base = scale * static_cast<float>(load_u16(codes + 2 * i)) + min_log_prob;
    if (i == 0 || lp_base > top_base_lp) {
      top_base_lp = lp_base;
      top_base = i;
    }
    if (lp_base > -kLogProbRange) sum += static_cast<double>(std::exp(lp_base) * (lp_base - logits[i] + log_norm));
  }
  r.kld = sum;
  r.same_top = top == top_base;
  r.p_diff = std::exp(-r.nll) - std::exp(-r.nll_base);
  return r;
}

}  // namespace pocketlm::eval
