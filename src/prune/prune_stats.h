#pragma once
// What structured pruning decides from: the model runs over calibration tokens (a forward pass of its own,
// built from model/arch/forward.h's steps, so the residual stream between blocks, each head's attention
// output and each FFN channel's activation can be watched) and the statistics below are averaged over every
// token:
//   - layer redundancy: the angle between the residual stream entering block a and leaving block b - 1, for
//     every a < b (angular distance arccos(cos) / pi, Gromov et al. 2024 "The Unreasonable Ineffectiveness of
//     the Deeper Layers"), and per block the Block Influence BI = 1 - cos(in, out) (Men et al. 2024, ShortGPT);
//   - head importance: mean L2 norm of a query head's attention output times the Frobenius norm of its
//     columns of attn_output (how much the head can move the residual stream);
//   - FFN channel importance: mean |activation| (after the GLU) times the L2 norm of its ffn_down column.
// With `gram`, also the Gram matrices (sum of x x^T over the tokens) of the inputs of attn_output and
// ffn_down, which the least-squares repair (prune/refit.h) needs. They cost n_ff^2 floats per layer
// (SmolLM2-135M: 280 MB): collected only when asked.
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "model/model.h"
#include "util/error.h"

namespace pocketlm {

struct PruneStatsOptions {
  bool gram = false;  // also collect the Gram matrices (for the repair)
  // Runs of dropped blocks [a, b) (a >= 1) whose contribution the repair folds into block a - 1's ffn_down:
  // for each, the cross moments sum_t (x_b - x_a) h^T of what the run adds to the residual stream and block
  // a - 1's FFN activations h (needs gram).
  std::vector<std::pair<int64_t, int64_t>> absorb;
  int64_t n_batch = 512;  // tokens per forward call
  int n_threads = 0;      // 0: physical cores
};

struct LayerPruneStats {
  double bi = 0;                    // mean over tokens of 1 - cos(block input, block output)
  std::vector<double> head;         // per query head: E||att_h|| * ||W_o[:, h]||_F
  std::vector<double> ffn;          // per FFN channel: E|h_j| * ||W_down[:, j]||
  std::vector<float> attn_gram;     // q_dim x q_dim, sum over tokens of att att^T (gram only)
  std::vector<float> ffn_gram;      // n_ff x n_ff, sum over tokens of h h^T (gram only)
  int64_t absorb_end = -1;          // b of the run [l + 1, b) this block absorbs (PruneStatsOptions::absorb)
  std::vector<float> absorb_cross;  // n_embd x n_ff: sum over tokens of (x_b - x_{l+1}) h^T
};

struct PruneStats {
  int64_t n_tokens = 0;
  int64_t n_layer = 0;
  std::vector<LayerPruneStats> layers;
  // (n_layer + 1)^2, row-major: angular[a * (n_layer + 1) + b] for a < b is the mean over tokens of
  // arccos(cos(x_a, x_b)) / pi, x_a the residual stream entering block a (x_n_layer: leaving the last one).
  std::vector<double> angular;
  double angular_distance(int64_t a, int64_t b) const { return angular[static_cast<size_t>(a * (n_layer + 1) + b)]; }
};

// Runs `sequences` (each from position 0, in forward calls of at most n_batch tokens) through `model` and
// averages the statistics. `tokens_done` reports progress. Errors: no tokens, a sequence longer than the
// model's context, a non-finite activation (naming the layer).
Expected<PruneStats> collect_prune_stats(const Model& model, std::span<const std::vector<int32_t>> sequences,
                                         const PruneStatsOptions& options,
                                         const std::function<void(int64_t)>& tokens_done = {});

}  // namespace pocketlm
