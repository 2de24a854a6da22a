#include "formats/block_grid.h"

#include <cassert>
#include <cmath>

#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/legacy.h"
#include "formats/rounding.h"
#include "formats/scale_search.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {

int BlockGrid::nearest(int j, float v) const {
  const float dj = d[j];
  if (dj == 0.0f) return lo <= 0 && hi >= 0 ? 0 : lo;  // every L decodes to m[j]
  return nearest_int_clamped((v - m[j]) / dj, lo, hi);
}

bool has_block_grid(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0_G64:
    case GgmlType::Q4_0_G128:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return true;
    default: return false;
  }
}

namespace {

void fill(BlockGrid& g, int from, int count, float d, float m) {
  for (int j = from; j < from + count; ++j) {
    g.d[j] = d;
    g.m[j] = m;
  }
}

template <typename Block>
void scale_min_grid(const Block& b, int nmax, BlockGrid& g) {
  g.n = QK_K;
  g.lo = 0;
  g.hi = nmax;
  const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
  for (int s = 0; s < 8; ++s) {
    uint8_t sc, mn;
    k_scale_min(b.scales, s, sc, mn);
    // The decoder computes dl * q - ml; d * L + m with m = -ml is the same float.
    fill(g, 32 * s, 32, d * static_cast<float>(sc), -(dmin * static_cast<float>(mn)));
  }
}

}  // namespace

void block_grid(GgmlType type, const void* block, BlockGrid& g) {
  switch (type) {
    case GgmlType::Q4_0: {
      const auto& b = *static_cast<const block_q4_0*>(block);
      g.n = 32, g.lo = -8, g.hi = 7;
      return fill(g, 0, 32, fp16_to_fp32(b.d), 0.0f);
    }
    case GgmlType::Q5_0: {
      const auto& b = *static_cast<const block_q5_0*>(block);
      g.n = 32, g.lo = -16, g.hi = 15;
      return fill(g, 0, 32, fp16_to_fp32(b.d), 0.0f);
    }
    case GgmlType::Q8_0: {
      const auto& b = *static_cast<const block_q8_0*>(block);
      g.n = 32, g.lo = -127, g.hi = 127;
      return fill(g, 0, 32, fp16_to_fp32(b.d), 0.0f);
    }
    case GgmlType::Q4_1: {
      const auto& b = *static_cast<const block_q4_1*>(block);
      g.n = 32, g.lo = 0, g.hi = 15;
      return fill(g, 0, 32, fp16_to_fp32(b.d), fp16_to_fp32(b.m));
    }
    case GgmlType::Q5_1: {
      const auto& b = *static_cast<const block_q5_1*>(block);
      g.n = 32, g.lo = 0, g.hi = 31;
      return fill(g, 0, 32, fp16_to_fp32(b.d), fp16_to_fp32(b.m));
    }
    case GgmlType::Q4_0_G64: {
      const auto& b = *static_cast<const block_q4_0_g64*>(block);
      g.n = 64, g.lo = -8, g.hi = 7;
      return fill(g, 0, 64, fp16_to_fp32(b.d), 0.0f);
    }
    case GgmlType::Q4_0_G128: {
      const auto& b = *static_cast<const block_q4_0_g128*>(block);
      g.n = 128, g.lo = -8, g.hi = 7;
      return fill(g, 0, 128, fp16_to_fp32(b.d), 0.0f);
    }
    case GgmlType::Q2_K: {
      const auto& b = *static_cast<const block_q2_K*>(block);
      g.n = QK_K, g.lo = 0, g.hi = 3;
      const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
      for (int s = 0; s < 16; ++s)
        fill(g, 16 * s, 16, d * static_cast<float>(b.scales[s] & 0x0F), -(dmin * static_cast<float>(b.scales[s] >> 4)));
      return;
    }
    case GgmlType::Q3_K: {
      const auto& b = *static_cast<const block_q3_K*>(block);
      g.n = QK_K, g.lo = -4, g.hi = 3;
      int8_t sc[16];
      q3_K_scales(b.scales, sc);
      const float d = fp16_to_fp32(b.d);
      for (int s = 0; s < 16; ++s) fill(g, 16 * s, 16, d * static_cast<float>(sc[s]), 0.0f);
      return;
    }
    case GgmlType::Q4_K: return scale_min_grid(*static_cast<const block_q4_K*>(block), 15, g);
    case GgmlType::Q5_K: return scale_min_grid(*static_cast<const block_q5_K*>(block), 31, g);
    case GgmlType::Q6_K: {
      const auto& b = *static_cast<const block_q6_K*>(block);
      g.n = QK_K, g.lo = -32, g.hi = 31;
      const float d = fp16_to_fp32(b.d);
      for (int s = 0; s < 16; ++s) fill(g, 16 * s, 16, d * static_cast<float>(b.scales[s]), 0.0f);
      return;
    }
    default: break;
  }
  assert(false && "block_grid: no uniform grid for this type (check has_block_grid)");
}

void pack_block_quants(GgmlType type, void* block, const int* L) {
  int8_t q[QK_K];
  const auto narrow = [&](int n) {
    for (int j = 0; j < n; ++j) q[j] = static_cast<int8_t>(L[j]);
  };
  switch (type) {
    case GgmlType::Q4_0: return pack_quants_q4_0(L, *static_cast<block_q4_0*>(block));
    case GgmlType::Q4_1: return pack_quants_q4_1(L, *static_cast<block_q4_1*>(block));
    case GgmlType::Q5_0: return pack_quants_q5_0(L, *static_cast<block_q5_0*>(block));
    case GgmlType::Q5_1: return pack_quants_q5_1(L, *static_cast<block_q5_1*>(block));
    case GgmlType::Q8_0: return pack_quants_q8_0(L, *static_cast<block_q8_0*>(block));
    case GgmlType::Q4_0_G64: return pack_quants_q4_0_g<QK4_0_G64>(L, *static_cast<block_q4_0_g64*>(block));
    case GgmlType::Q4_0_G128: return pack_quants_q4_0_g<QK4_0_G128>(L, *static_cast<block_q4_0_g128*>(block));
    case GgmlType::Q2_K: narrow(QK_K); return pack_quants_q2_K(q, *static_cast<block_q2_K*>(block));
    case GgmlType::Q3_K: narrow(QK_K); return pack_quants_q3_K(q, *static_cast<block_q3_K*>(block));
    case GgmlType::Q4_K: narrow(QK_K); return pack_quants_q4_K(q, *static_cast<block_q4_K*>(block));
    case GgmlType::Q5_K: narrow(QK_K); return pack_quants_q5_K(q, *static_cast<block_q5_K*>(block));
    case GgmlType::Q6_K: narrow(QK_K); return pack_quants_q6_K(q, *static_cast<block_q6_K*>(block));
    default: break;
  }
  assert(false && "pack_block_quants: no uniform grid for this type (check has_block_grid)");
}

}  // namespace pocketlm
