#pragma once
// The Llama-block forward pass: embedding, per layer RMSNorm → attention → residual → RMSNorm → SwiGLU FFN →
// residual, final norm and head. It runs every architecture whose ModelConfig::block is ArchBlock::Llama —
// llama (Llama 1–3.x with rope_freqs, SmolLM2, Mistral with its window), qwen2 (Q/K/V biases), qwen3 (Q/K
// head norms), phi3 (fused QKV and gate/up, LongRoPE, partial rotary) and smollm3 (RoPE-less layers) — their
// differences are in the config and the tensors present, applied by attention_block and ffn_block.
#include <cstdint>
#include <span>

#include "model/arch/forward.h"

namespace pocketlm {

// A ForwardFn (model/arch/forward.h).
void llama_forward(const Model& model, std::span<const int32_t> tokens, std::span<const SeqSlice> seqs,
                   ForwardScratch& s, ThreadPool& pool);

}  // namespace pocketlm
