#pragma once
// How close a quantized model is to its base, for the quantizer tests: top-1 agreement of the next-token
// argmax over the first 250 tokens of a text (one batched pass per model, f32 KV), and the TinyStories sample
// those tests score on, and greedy continuations.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace pocketlm::test {

double top1_agreement(const Model& a, const Model& b, const std::string& text);
// The first 1,500 bytes of shared/testdata/text/tinystories-val.dev.txt (a fixed sentence if it is missing).
std::string tinystories_sample();
// Greedy continuation of `prompt` (n tokens) with pocketlm (f32 KV, 2 threads).
std::vector<int32_t> greedy(const Model& m, const std::string& prompt, int n);

}  // namespace pocketlm::test
