#pragma once
// The planner's fitted constants: the one place they live. Written by scripts/calibrate-plan.sh from the
// measurements it keeps in docs/plan-calibration.json (peak RSS of `pocketlm run` with a prompt that fills
// the context, `pocketlm bench` pp512/tg128); re-run it on an idle machine to refresh the speed constants.

namespace pocketlm {

struct PlanCalibration {
  // Runtime overhead not in the weights, KV cache or forward-pass scratch: the binary, its libraries,
  // allocator arenas and thread stacks (fixed), plus the tokenizer's tables and the sampler's candidates
  // (per vocabulary entry). The GGUF metadata pages are counted on their own (they are mapped and read).
  double overhead_fixed_bytes;
  double overhead_per_vocab_bytes;
  // Fraction of the bound this engine reaches: decode against min(bandwidth roofline, int8 compute),
  // prefill (pp512) against min(int8 compute, weights streamed once per 512-token batch).
  double decode_efficiency;      // weights in the x16 decode layout (and the KV cache)
  double decode_efficiency_row;  // weights the decode GEMVs read row by row (q4_1, q5_0, q8_0, ...)
  double prefill_efficiency;
  // Prefill's work outside the matmuls, per layer and token, as int8 ops at prefill_efficiency (fitted with
  // it by least squares: measured ops/token = (matmul + attention ops + this x n_layer) / efficiency).
  double prefill_layer_ops;
};

// Not fitted: structural estimates the memory model uses.
// GGUF metadata of a shape (no file to measure): a tokenizer entry is its string, its length, score and type.
inline constexpr double kPlanMetadataBytesPerVocab = 24.0;
// Quantized activations per input value of a matmul (q8_K rows, 1.14 B/value, plus their packed copy).
inline constexpr double kPlanActivationBytesPerValue = 2.3;
// Per thread, the attention's score rows are kept near this many floats (model/attention.cpp's job size).
inline constexpr double kPlanAttentionScoreFloats = 256.0 * 1024.0;

// BEGIN GENERATED (scripts/calibrate-plan.sh, 2026-12-07T09:06:15Z, load average 1.9)
inline constexpr PlanCalibration kPlanCalibration{
    .overhead_fixed_bytes = 12646000.0,
    .overhead_per_vocab_bytes = 443.2,
    .decode_efficiency = 0.600,
    .decode_efficiency_row = 0.383,
    .prefill_efficiency = 0.2668,
    .prefill_layer_ops = 14555000.0,
};
// END GENERATED
}  // namespace pocketlm
