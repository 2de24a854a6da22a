#pragma once
// The rule that decides whether the target keeps a drafted token, so that the tokens produced have exactly
// the target's distribution (Leviathan et al. 2023, Chen et al. 2023):
//   accept x with probability min(1, p(x) / q(x));
//   on rejection, emit a token drawn from norm(max(0, p - q)).
// p and q are the distributions after the sampler chain (temperature, top-k/p, min-p, penalties) on the
// target's and the draft's logits. A deterministic draft (lookup: q is a point mass at x) gives the exact
// rule for that case: accept with probability p(x), else draw from p without x. Greedy decoding is the case
// of one-hot p and q: accept while the target's argmax is the draft token, else emit the argmax; it draws
// no random numbers.
#include <cstdint>
#include <random>
#include <span>

#include "runtime/sampler.h"

namespace pocketlm {

struct Verdict {
  bool accepted = false;
  int32_t token = -1;  // x when accepted, else the token emitted in its place
};

// p: the target's distribution at this position; q: the draft's (empty: a point mass at x); x: the drafted
// token. Draws from rng only when the outcome is random.
using AcceptanceRule = Verdict (*)(std::span<const TokenProb> p, std::span<const TokenProb> q, int32_t x,
                                   std::mt19937& rng);
Verdict accept_lossless(std::span<const TokenProb> p, std::span<const TokenProb> q, int32_t x, std::mt19937& rng);

// The probability of `id` in a distribution (0 when it is not kept).
float probability_of(std::span<const TokenProb> dist, int32_t id);

// A uniform draw in [0, 1) from the stream (as std::generate_canonical).
double uniform01(std::mt19937& rng);

}  // namespace pocketlm
