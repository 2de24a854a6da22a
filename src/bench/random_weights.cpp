#include "bench/random_weights.h"

#include <cmath>
#include <cstring>

#include "formats/float.h"

namespace pocketlm {
namespace {

struct ScaleSlot {
  size_t offset;     // byte offset of an f16 field inside the block
  double per_sigma;  // the field's typical value for weights of std 1 (scaled by sigma)
};

// Where each block keeps its f16 scale(s), and their magnitude for weights of unit spread. For a block
// whose quants q are uniform, value = d * f(q) (minus an offset for the types with a min): d is chosen so
// that the values' spread is sigma, and the min so that they are centred near zero.
struct Layout {
  GgmlType type;
  ScaleSlot d;
  ScaleSlot m;  // offset SIZE_MAX: none
};

constexpr size_t kNone = static_cast<size_t>(-1);

const Layout* layout_of(GgmlType t) {
  // Spread of uniform q: 0..15 → 4.6, 0..31 → 9.2, int8 → 74. K-quants multiply by the sub-block scale
  // (6-bit: mean 31.5; Q2_K 4-bit: 7.5; Q3_K signed 6-bit: |mean| 16; Q6_K int8: |mean| 64).
  static const Layout kLayouts[] = {
      {GgmlType::Q4_0, {0, 1.0 / 4.6}, {kNone, 0}},
      {GgmlType::Q4_1, {0, 1.0 / 4.6}, {2, -7.5 / 4.6}},
      {GgmlType::Q5_0, {0, 1.0 / 9.2}, {kNone, 0}},
      {GgmlType::Q5_1, {0, 1.0 / 9.2}, {2, -15.5 / 9.2}},
      {GgmlType::Q8_0, {0, 1.0 / 74.0}, {kNone, 0}},
      {GgmlType::Q2_K, {80, 1.0 / (7.5 * 1.1)}, {82, 1.5 / (7.5 * 1.1)}},
      {GgmlType::Q3_K, {108, 1.0 / (16.0 * 2.3)}, {kNone, 0}},
      {GgmlType::Q4_K, {0, 1.0 / (31.5 * 4.6)}, {2, 7.5 / (31.5 * 4.6)}},
      {GgmlType::Q5_K, {0, 1.0 / (31.5 * 9.2)}, {2, 15.5 / (31.5 * 9.2)}},
      {GgmlType::Q6_K, {208, 1.0 / (64.0 * 18.5)}, {kNone, 0}},
      {GgmlType::Q4_0_G64, {0, 1.0 / 4.6}, {kNone, 0}},  // pocketlm-only: q4_0 with one scale per 64 / 128
      {GgmlType::Q4_0_G128, {0, 1.0 / 4.6}, {kNone, 0}},
  };
  for (const Layout& l : kLayouts) {
    if (l.type == t) return &l;
  }
  return nullptr;
}

void fill_bytes(SplitMix64& rng, uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng.next();
    std::memcpy(p + i, &v, 8);
  }
  if (i < n) {
    const uint64_t v = rng.next();
    std::memcpy(p + i, &v, n - i);
  }
}

// Approximately normal (sum of four uniforms, rescaled): cheap and bounded.
float gaussian(SplitMix64& rng) {
  const double s = rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform() - 2.0;
  return static_cast<float>(s * 1.7320508);  // var of the sum is 4/12
}

void put_f16(uint8_t* p, double v) {
  const uint16_t h = fp32_to_fp16(static_cast<float>(v));
  std::memcpy(p, &h, 2);
}

}  // namespace

bool can_fill_random(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 || layout_of(type) != nullptr;
}

Status fill_random_weights(GgmlType type, int64_t n_elements, uint64_t seed, std::span<uint8_t> out, float sigma) {
  const TypeTraits& tt = type_traits(type);
  if (!can_fill_random(type)) return Error("no random-weight generator for type " + std::string(tt.name));
  if (n_elements < 0 || n_elements % tt.block_size != 0) {
    return Error(std::to_string(n_elements) + " elements is not a whole number of " + std::string(tt.name) + " blocks");
  }
  const size_t nbytes = row_size(type, n_elements);
  if (out.size() != nbytes) {
    return Error("buffer of " + std::to_string(out.size()) + " bytes for " + std::to_string(nbytes) + " bytes of " +
                 std::string(tt.name));
  }
  SplitMix64 rng(seed * 0x2545F4914F6CDD1Dull + 0x1234567ull);
  uint8_t* p = out.data();
  if (type == GgmlType::F32) {
    for (int64_t i = 0; i < n_elements; ++i) {
      const float v = gaussian(rng) * sigma;
      std::memcpy(p + 4 * i, &v, 4);
    }
    return Status::Ok();
  }
  if (type == GgmlType::F16 || type == GgmlType::BF16) {
    for (int64_t i = 0; i < n_elements; ++i) {
      const float v = gaussian(rng) * sigma;
      const uint16_t h = type == GgmlType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
      std::memcpy(p + 2 * i, &h, 2);
    }
    return Status::Ok();
  }
  const Layout& l = *layout_of(type);
  fill_bytes(rng, p, nbytes);
  const int64_t n_blocks = n_elements / tt.block_size;
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = p + static_cast<size_t>(b) * tt.type_size;
    const double jitter = 0.5 + rng.uniform();  // blocks differ in scale, as real ones do
    put_f16(blk + l.d.offset, sigma * l.d.per_sigma * jitter);
    if (l.m.offset != kNone) put_f16(blk + l.m.offset, sigma * l.m.per_sigma * jitter);
  }
  return Status::Ok();
}

}  // namespace pocketlm
