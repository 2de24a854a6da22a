#pragma once
// A self-draft: the target model requantized in memory to a low-bit type at load (no second file). Every
// weight matrix is decoded from the target's file and encoded to `type` (formats/quantize.h); norms and other
// vectors are copied. With n_layers > 0 only the first n_layers blocks are kept, and the output head reads the
// last kept layer (layer-skip drafting). The result is an in-memory GGUF image loaded as an ordinary Model,
// so it runs on the same kernels and decode layouts as any file of that type.
#include <cstdint>
#include <memory>

#include "formats/ggml_type.h"
#include "model/model.h"
#include "util/error.h"

namespace pocketlm {

class ThreadPool;

struct SelfDraftOptions {
  GgmlType type = GgmlType::Q4_0;
  int64_t n_layers = 0;  // 0: all of the target's layers
  ModelLoadOptions load;
};

// The type a row of n elements is stored in when `type` is asked for: `type` when its block size divides n,
// else the nearest legacy type of about the same size (q2_K, q3_K, q4_K -> q4_0; q5_K -> q5_1; q6_K -> q8_0),
// as llama.cpp's quantizer falls back for rows that are not a multiple of 256.
GgmlType self_draft_row_type(GgmlType type, int64_t n);

// Errors: a type pocketlm cannot encode or compute with, n_layers above the target's, or a target that is
// already no larger than the draft would be (naming both sizes). `pool` (nullable) splits the encoding.
Expected<std::unique_ptr<Model>> make_self_draft(const Model& target, const SelfDraftOptions& options,
                                                 ThreadPool* pool);

}  // namespace pocketlm
