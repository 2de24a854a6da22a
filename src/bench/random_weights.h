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

namespace pocketlm {

// A small, fast PRNG (splitmix64): deterministic across platforms, enough for benchmark data.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }  // [0, 1)

 private:
  uint64_t s_;
};

// Fills `out` (exactly row_size(type, n_elements) bytes; n_elements a multiple of the block size) with
// valid random data of `type`. F32/F16/BF16: N(0, sigma)-like values. Errors for types it cannot make.
Status fill_random_weights(GgmlType type, int64_t n_elements, uint64_t seed, std::span<uint8_t> out,
                           float sigma = 0.02f);

// Whether fill_random_weights supports `type`.
bool can_fill_random(GgmlType type);

}  // namespace pocketlm
