#pragma once
// Transplanted test models: a real model's weights (SmolLM2's for the Llama-block architectures, Gemma 3's for
// gemma2) laid out as another architecture lays them out, with that architecture's extra parameters filled
// with plausible values and its metadata as llama.cpp's converter writes it. No checkpoint of these families
// is reachable here; a transplanted file exercises every tensor layout and hyper-parameter of the family while
// its next-token distributions stay peaked like a trained model's (random weights give flat ones). Both
// pocketlm and llama.cpp then judge the same file.
//
//   target    GGUF arch  from    what changes
//   llama3    llama      llama   rope_freqs.weight: Llama 3.x RoPE factors (factor 32, low 1, high 4, 8192)
//   mistral   llama      llama   attention.sliding_window (4096: the Mistral 7B v0.1 window)
//   qwen2     qwen2      llama   Q/K rows back to NeoX order; Q/K/V biases (small, seeded)
//   qwen3     qwen3      llama   NeoX order; per-head Q/K RMSNorm weights: the source's mean head RMS in that
//                                layer (measured through it on a calibration text), ±5 % per dimension
//   phi3      phi3       llama   NeoX order; fused attn_qkv and ffn_up [gate; up]; LongRoPE short/long factors,
//                                original context, attn factor (whole-head rotary, as Phi-3.5-mini: a 3/4 partial
//                                rotary over weights trained with full RoPE leaves a model near 5 % accurate)
//   smollm3   smollm3    llama   nothing but the name: every 4th layer then runs without RoPE
//   gemma2    gemma2     gemma3  Q/K head norms folded into f32 Q/K projections (scaled by norm weight / the
//                                head's mean RMS through the source on a calibration text); attention and
//                                final soft-caps (50, 30); every other layer local
#include <cstdint>
#include <string>
#include <vector>

#include "util/error.h"

namespace pocketlm {

struct TransplantOptions {
  std::string target;  // one of transplant_targets()
  std::string from;    // the source GGUF (a llama-architecture SmolLM2, or a gemma3 for gemma2)
  uint64_t seed = 1;   // for the extra parameters (same seed, same bytes)
  // Extras that keep the source's function where the layout allows it, for tests: zero biases; phi3 with unit
  // factors and attention factor 1 (qwen3's norms and gemma2's folded norms still change it). A neutral qwen2 or phi3
  // transplant computes what the source computes, in another layout.
  bool neutral = false;
};

struct TransplantResult {
  std::string arch;  // general.architecture written
  size_t n_tensors = 0;
  size_t n_added = 0;  // tensors that are not in the source (biases, norms, factors)
};

// llama3 mistral qwen2 qwen3 phi3 smollm3 gemma2
const std::vector<std::string>& transplant_targets();

// Writes the transplanted model atomically to `path`. Errors name the target, the source file and what it
// lacks (an architecture other than the one the target transplants from, fused matrices of differing types).
Expected<TransplantResult> write_transplanted_model(const TransplantOptions& opts, const std::string& path);

}  // namespace pocketlm
