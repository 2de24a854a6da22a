#pragma once
// MemoryPlan: the peak resident memory of generating with a model at a context size, part by part:
//   weights   every tensor's bytes from the tensor table (mapped, or repacked into an anonymous buffer:
//             either way each byte is resident once a prompt has run through every layer),
//   kv        the KV cache (model/kv_memory's report: the formula, sliding windows, block rounding),
//   scratch   the forward pass's buffers for a 512-token prompt batch (model/arch/forward.h's
//             ForwardScratch, the matmul's quantized activations, the attention's per-thread scores),
//   overhead  the runtime (fixed), the tokenizer and sampler (per vocabulary entry) and the GGUF metadata,
//   draft     a speculative-decoding draft model's weights, KV and scratch.
// The fitted constants are in plan/calibration.h; tests check the total against measured peak RSS.
#include <cstdint>
#include <optional>
#include <vector>

#include "formats/kv_types.h"
#include "model/kv_memory.h"
#include "plan/plan_model.h"
#include "util/error.h"

namespace pocketlm {

struct MemoryOptions {
  int64_t n_ctx = 0;  // 0: min(trained context, 4096), as a session does
  KvType type_k = KvType::F16;
  KvType type_v = KvType::F16;
  int n_threads = 1;  // the scratch has per-thread parts
  int64_t kv_block = 32;
  const PlanModel* draft = nullptr;
};

struct MemoryPlan {
  int64_t n_ctx = 0;
  KvType type_k = KvType::F16, type_v = KvType::F16;
  uint64_t weights_bytes = 0;
  std::vector<std::pair<GgmlType, uint64_t>> weights_by_type;  // largest first
  KvMemoryReport kv;
  uint64_t kv_bytes = 0;
  uint64_t kv_formula_bytes = 0;  // 2 x layers x kv_heads x head_dim x n_ctx x bytes per value (no scales,
                                  // no window, no block rounding): the textbook formula
  uint64_t scratch_bytes = 0;
  uint64_t overhead_bytes = 0;  // fixed + per vocabulary entry + metadata
  uint64_t metadata_bytes = 0;  // (part of overhead)
  uint64_t draft_bytes = 0;
  uint64_t peak_rss_bytes = 0;
};

// Errors: a context of zero or beyond the model's trained context, KV types the shape cannot hold.
Expected<MemoryPlan> plan_memory(const PlanModel& m, const MemoryOptions& o);

// The largest context (at most the trained one) whose peak RSS fits `budget_bytes`; 0 when none does.
int64_t max_context(const PlanModel& m, MemoryOptions o, uint64_t budget_bytes);

// The most precise KV type (f16, then q8, then q4; K and V alike) whose plan fits `budget_bytes` at o.n_ctx.
std::optional<KvType> best_kv_type(const PlanModel& m, MemoryOptions o, uint64_t budget_bytes);

}  // namespace pocketlm
