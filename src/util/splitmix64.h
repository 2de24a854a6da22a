#pragma once
// splitmix64 (Steele, Lea and Flood): a small, fast generator, the same on every platform and compiler, for
// seeded test data, bootstrap resampling and hashing. No std::distribution: results never depend on the
// standard library.
#include <cstdint>

namespace pocketlm {

// The finalizer alone: a well-mixed 64-bit function of h.
constexpr uint64_t splitmix64_mix(uint64_t h) {
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() { return splitmix64_mix(s_ += 0x9E3779B97F4A7C15ull); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }  // [0, 1)
  // [0, n): next() modulo n (the modulo bias is below n / 2^64).
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t s_;
};

}  // namespace pocketlm
