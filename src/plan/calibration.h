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
  // Decode, seconds per token = max(memory, core) + sync:
  //   memory: (weights + KV) / (decode_efficiency x bandwidth), what the memory system delivers;
  //   core:   x16-layout bytes / (decode_bytes_per_op x ops) + row-read bytes / (decode_bytes_per_op_row x ops),
  //           how fast the cores' kernels consume weights (few cores cannot use the whole bandwidth; types
  //           read row by row, q5_K, q2_K, q3_K, iq4_*, ..., are slower), ops = the CPU's int8 ops/s;
  //   sync:   with more than one thread, n_layer x decode_layer_ops at one core's int8 rate: the fork/join of
  //           each layer's parallel steps, which does not shrink with threads and dominates small models.
  double decode_efficiency;
  double decode_bytes_per_op;
  double decode_bytes_per_op_row;
  double decode_layer_ops;
  // Prefill (pp512): fraction of min(int8 compute, weights streamed once per 512-token batch) reached.
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

// BEGIN GENERATED (scripts/calibrate-plan.sh, 2026-12-07T17:19:57Z, load average 2.5)
inline constexpr PlanCalibration kPlanCalibration{
    .overhead_fixed_bytes = 16380000.0,
    .overhead_per_vocab_bytes = 476.6,
    .decode_efficiency = 0.996,
    .decode_bytes_per_op = 0.04275,
    .decode_bytes_per_op_row = 0.008823,
    .decode_layer_ops = 27853000.0,
    .prefill_efficiency = 0.3024,
    .prefill_layer_ops = 10710000.0,
};
// END GENERATED
}  // namespace pocketlm
