#pragma once
// The Llama-family forward pass (llama, SmolLM2 — tied or separate head): embedding, per layer
// RMSNorm → GQA attention with RoPE → residual → RMSNorm → SwiGLU FFN → residual, final norm and head.
#include "model/arch/forward.h"
#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"
#include "model/kv_cache.h"
#include "util/thread_pool.h"

namespace pocketlm {

// A ForwardFn (model/arch/forward.h).
void llama_forward(const Model& model, std::span<const int32_t> tokens, int64_t pos0, Logits which, KvCache& kv,
                   ForwardScratch& s, ThreadPool& pool);

}  // namespace pocketlm
