#pragma once
// Random but valid tensor data of any weight type pocketlm multiplies, for synthetic models and kernel
// benchmarks: quants are uniform random bits, and every block's f16 scale (and min) is finite and of the
// magnitude real checkpoints have, so that the dequantized weights look like N(0, sigma) weights
// (sigma = 0.02 by default). Deterministic: the same (type, count, seed) always gives the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/ggml_type.h"
#include "util/error.h"
#include "util/splitmix64.h"

namespace pocketlm {

// Fills `out` (exactly row_size(type, n_elements) bytes; n_elements a multiple of the block size) with
// valid random data of `type`. F32/F16/BF16: N(0, sigma)-like values. Errors for types it cannot make.
Status fill_random_weights(GgmlType type, int64_t n_elements, uint64_t seed, std::span<uint8_t> out,
                           float sigma = 0.02f);

// Whether fill_random_weights supports `type`.
bool can_fill_random(GgmlType type);

}  // namespace pocketlm
