#pragma once
// Structured pruning of a GGUF model (`pocketlm prune`, docs/pruning.md): whole blocks dropped and the rest
// renumbered, attention heads removed per KV group, FFN channels cut from gate/up rows and down columns
// together, chosen from calibration statistics (prune/prune_stats.h), optionally repaired by a
// least-squares refit (prune/refit.h). The output is a valid model of the same architecture that pocketlm and
// llama.cpp load, written atomically: any error leaves no file.
//
// Widths stay uniform across layers: every kept layer keeps the same number of heads and channels (each
// layer its own most important ones) and the file says so with the usual scalar keys. llama.cpp reads
// `{arch}.feed_forward_length` / `attention.head_count` / `head_count_kv` as per-layer arrays, but the
// architectures pocketlm runs (llama, qwen2, qwen3, phi3, smollm3, gemma2, gemma3) size every layer's tensors
// from layer 0's value, so a file with different widths per layer would not load there.
//
// What each architecture can take (check_prunable says why not, before any work):
//   - dropping blocks: all but smollm3 (RoPE is skipped on every 4th layer by index: renumbering would move
//     it) and a Gemma whose layer count selects the 27B query scale (46 for gemma2, 62 for gemma3) before or
//     after; Gemma's sliding-window layout is rewritten as one flag per kept layer;
//   - removing heads: llama, qwen3, smollm3, gemma2, gemma3 (not the 27B Gemmas, whose query scale is
//     n_embd / n_head); not qwen2 or phi3, whose Q projection llama.cpp sizes as n_embd;
//   - narrowing the FFN: all but phi3 (fused gate/up: not implemented).
//
// Touched tensors (rows or columns removed, or refit) are written in their input type when it is f32, f16
// or bf16; a quantized input's row selections are copied as they are (no rounding), its column selections and
// refits dequantized to f32 (requantize the output with `pocketlm quantize`).
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "prune/prune_stats.h"
#include "util/error.h"

namespace pocketlm {

enum class LayerScore {
  Angular,  // drop the contiguous run of n blocks whose input and output are closest in angle (Gromov et al.)
  Bi,       // drop the n blocks of lowest Block Influence 1 - cos(in, out), each judged alone (ShortGPT)
};

struct PruneOptions {
  std::vector<int64_t> drop_layers;  // explicit block indices to drop (then keep_layers must be -1)
  int64_t keep_layers = -1;          // -1: no layer dropping by score; else the output's block count
  LayerScore score = LayerScore::Angular;
  double heads_keep = 1.0;   // fraction of query heads kept (snapped to a count GQA allows)
  double ffn_keep = 1.0;     // fraction of FFN channels kept (rounded to ffn_multiple)
  int64_t ffn_multiple = 0;  // 0: 256 when n_ff is a multiple of 256 (k-quants), else 32 when it is
                             // a multiple of 32, else 1
  bool repair = false;       // least-squares refit of ffn_down / attn_output (needs the Gram stats);
                             // for dropped blocks, the block before them learns what they added
  double ridge = 1e-3;
  bool progress = true;
  const std::atomic<bool>* cancel = nullptr;
};

// Which scores the options need: none for an explicit layer list alone.
bool prune_needs_calibration(const PruneOptions& o);

struct PruneTensorPlan {
  std::string name, out_name;  // out_name: the renumbered name
  GgmlType type = GgmlType::F32, out_type = GgmlType::F32;
  std::vector<int64_t> ne, out_ne;
  uint64_t bytes = 0, out_bytes = 0;
  enum class Edit { Copy, Rows, Columns } edit = Edit::Copy;
  bool refit = false;
};

struct PrunePlan {
  std::string arch;
  int64_t n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, head_dim = 0;  // input
  std::vector<int64_t> kept_layers;  // input indices, increasing (output block i is kept_layers[i])
  std::vector<int64_t> dropped_layers;
  std::vector<double> layer_scores;  // per input block: the score that chose (BI, or the angular
                                     // distance of the run starting there), empty without calibration
  LayerScore score = LayerScore::Angular;
  int64_t out_n_head = 0, out_n_head_kv = 0, out_n_ff = 0;
  // Per input block (kept ones filled): kept query heads, kept KV heads, kept FFN channels (input indices).
  std::vector<std::vector<int64_t>> kept_heads, kept_kv_heads, kept_channels;
  bool repair = false;
  std::vector<PruneTensorPlan> tensors;  // the output's, in the input's order (dropped blocks left out)
  uint64_t bytes = 0, out_bytes = 0;     // tensor data of the input and the output
  std::vector<std::string> notes;
};

// Checks the request against the architecture (see above) and the shapes; errors say what cannot be done and
// why, naming the setting (Error::setting: drop_layers, keep_layers, heads_keep, ffn_keep).
Status check_prunable(const Model& model, const PruneOptions& o);

// The plan: what is dropped (from `stats` where the options ask for scores; stats may be null when they do
// not) and every output tensor's shape, type and bytes.
Expected<PrunePlan> plan_pruning(const Model& model, const PruneStats* stats, const PruneOptions& o);

struct PruneResult {
  uint64_t file_bytes = 0;
  double seconds = 0;
};

// The runs of dropped blocks [a, b) whose contribution the repair folds into block a - 1's ffn_down (a >= 1;
// Llama-block architectures only: Gemma's norm after the FFN makes the fold nonlinear). The statistics for
// them come from a second calibration pass (PruneStatsOptions::absorb); empty without repair.
std::vector<std::pair<int64_t, int64_t>> absorb_runs(const Model& model, const PrunePlan& plan);

// Writes the pruned model to out_path atomically. `stats` must carry the Gram matrices when plan.repair.
Expected<PruneResult> write_pruned_model(const Model& model, const PrunePlan& plan, const PruneStats* stats,
                                         const PruneOptions& o, const std::string& out_path);

// The plan as text (--dry-run and before writing): layers with their scores, widths, bytes saved.
std::string format_prune_plan(const PrunePlan& plan);

}  // namespace pocketlm
