#pragma once
// Speculative decoding against plain decoding of the same target, in the same run: repetitions alternate
// between a plain generation and a speculative one of the same prompt and length, so machine noise hits both
// alike. Reported beside the measured speedup: the speedup Leviathan et al.'s formula predicts from the
// measured acceptance rate a, draft length k and draft cost c (draft time per token over the plain decode
// time per token), (1 - a^(k+1)) / ((1 - a)(k c + 1)): the gap is what the target's batched pass costs
// beyond one decode step.
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/session.h"
#include "runtime/speculative/draft_source.h"
#include "util/error.h"

namespace pocketlm {

struct SpeculativeBenchOptions {
  std::vector<int32_t> prompt;  // evaluated untimed before each generation
  int n_gen = 128;              // tokens generated per run (end-of-generation ignored)
  int reps = 5;
  DraftParams draft;
  SamplerParams sampling{.temp = 0.0f, .seed = 1};  // greedy: the outputs must then be identical
};

struct SpeculativeBenchResult {
  std::vector<double> plain_ts, spec_ts;  // generation tokens per second, per repetition
  SpeculativeStats stats;                 // summed over the speculative repetitions
  double plain_seconds_per_token = 0;     // median plain decode step
  bool identical = true;                  // every speculative output equals the plain one (greedy)
  double acceptance() const { return stats.acceptance_rate(); }
  double draft_length() const {
    return stats.rounds > 0 ? static_cast<double>(stats.drafted) / static_cast<double>(stats.rounds) : 0;
  }
  // Draft time per drafted token over the plain decode time per token.
  double draft_cost() const;
  double predicted_speedup() const;  // the formula above
};

// One warm-up of each kind, then `reps` alternating pairs. `session` is the target's (shared with the
// draft's pools as make_draft_source arranged).
Expected<SpeculativeBenchResult> bench_speculative(const Model& target, Session& session, DraftSource& draft,
                                                   const SpeculativeBenchOptions& o);

}  // namespace pocketlm
