#pragma once
// llama-bench's two tests on a pocketlm Session: pp N = one prompt of N random tokens into an empty cache
// (timed as a whole), tg N = N single-token decodes from an empty cache (timed as a whole). Results are
// tokens per second; a set of repetitions is summarized by its median and spread.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "util/error.h"

namespace pocketlm {

struct SpeedTest {
  enum class Kind { Prompt, Generate };
  Kind kind = Kind::Prompt;
  int64_t n = 0;
  int64_t depth = 0;  // positions already in the cache when the timed part starts (llama-bench's -d)
  std::string name() const {
    return (kind == Kind::Prompt ? "pp" : "tg") + std::to_string(n) + (depth > 0 ? " @ d" + std::to_string(depth) : "");
  }
};

// Seconds for one run of `t` from a cache holding t.depth random tokens (their prefill is not timed; a
// session already holding at least t.depth tokens is rolled back to t.depth instead of prefilled again). A warm-up run
// of a tg test decodes a single token (as llama-bench's warm-up does); a warm-up pp runs the whole prompt. Tokens are
// random ids (the first is BOS when the vocabulary adds one), drawn from `rng`.
Expected<double> time_speed_test(const Model& model, Session& s, const SpeedTest& t, bool warmup, std::mt19937& rng);

struct SampleStats {
  double median = 0, min = 0, max = 0, mean = 0, stdev = 0;
};
SampleStats summarize(std::vector<double> samples);  // empty: all zero

}  // namespace pocketlm
