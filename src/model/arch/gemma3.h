#pragma once
// The Gemma 3 forward pass (`gemma3` in GGUF): embeddings scaled by sqrt(n_embd); per layer
// RMSNorm → attention (Q/K RMS-normed per head, NeoX RoPE with the local or global base, queries scaled by
// query_pre_attn_scalar^-1/2, a sliding window on local layers) → RMSNorm → residual → RMSNorm → GeGLU FFN →
// RMSNorm → residual; final norm, tied head, optional logit soft-cap.
#include <cstdint>
#include <span>

#include "model/arch/forward.h"

namespace pocketlm {

// A ForwardFn (model/arch/forward.h).
void gemma3_forward(const Model& model, std::span<const int32_t> tokens, int64_t pos0, Logits which, KvCache& kv,
                    ForwardScratch& s, ThreadPool& pool);

}  // namespace pocketlm
