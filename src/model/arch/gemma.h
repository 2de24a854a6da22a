#pragma once
// The Gemma-block forward pass (`gemma2` and `gemma3` in GGUF): embeddings scaled by sqrt(n_embd); per layer
// RMSNorm → attention (gemma3: Q/K RMS-normed per head; NeoX RoPE with the local or global base; queries
// scaled by query_pre_attn_scalar^-1/2; a sliding window on local layers; gemma2: scores soft-capped) →
// RMSNorm → residual → RMSNorm → GeGLU FFN → RMSNorm → residual; final norm, tied head, logit soft-cap.
#include <cstdint>
#include <span>

#include "model/arch/forward.h"

namespace pocketlm {

// A ForwardFn (model/arch/forward.h).
void gemma_forward(const Model& model, std::span<const int32_t> tokens, std::span<const SeqSlice> seqs,
                   ForwardScratch& s, ThreadPool& pool);

}  // namespace pocketlm
