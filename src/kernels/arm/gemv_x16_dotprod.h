// Decode GEMVs over row-interleaved weights (kernels/interleave.h: 16 rows per group) with lane-indexed SDOT
// (FEAT_DotProd), for q4_0, q4_K and q6_K. A 64-byte chunk of a group is four 16-byte vectors, each the
// same quant dword of 4 rows (positions 4Q..4Q+3: rows 0-3, 8-11, 4-7, 12-15). One SDOT by lane multiplies
// a vector by one activation dword picked from a 16-byte activation register (vdotq_laneq_s32), so each of
// the four int32 lanes is one row: no broadcasts, no horizontal sums, one scale decode per 16 rows.
//
// Integer sums are exact; the float epilogue is one multiply-add per block and row quad, so results differ
// from the scalar reference only by float summation order, like every path's.
//
// Included INSIDE the dotprod and i8mm namespaces after ops_arm.h (needs __ARM_FEATURE_DOTPROD).
#pragma once

namespace x16 {

// f(Int<0>), ..., f(Int<3>): the SDOT lane must be a constant.
template <int I>
struct Int {
  static constexpr int value = I;
};
template <class F>
inline void lanes4(F&& f) {
  f(Int<0>{});
  f(Int<1>{});
  f(Int<2>{});
  f(Int<3>{});
}

inline int8x16_t u2s(uint8x16_t v) { return vreinterpretq_s8_u8(v); }
// 4 f16 scales of a row quad (position order) as floats.
inline float32x4_t f16x4(const uint8_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
}
// Natural row order (16 x uint8 / int8) -> int32 per row quad Q (rows 0-3, 8-11, 4-7, 12-15).
inline void widen_u8(uint8x16_t v, int32x4_t (&q)[4]) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(v)), hi = vmovl_u8(vget_high_u8(v));
  q[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo)));
  q[2] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(lo)));
  q[1] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi)));
  q[3] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(hi)));
}
inline void widen_s8(int8x16_t v, int32x4_t (&q)[4]) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
  q[0] = vmovl_s16(vget_low_s16(lo));
  q[2] = vmovl_s16(vget_high_s16(lo));
  q[1] = vmovl_s16(vget_low_s16(hi));
  q[3] = vmovl_s16(vget_high_s16(hi));
}
// Row quads back to row order.
inline void store_rows(float* out, const float32x4_t (&acc)[4]) {
  vst1q_f32(out, acc[0]);
  vst1q_f32(out + 4, acc[2]);
  vst1q_f32(out + 8, acc[1]);
  vst1q_f32(out + 12, acc[3]);
}

// ---------------------------------------------------------------- q4_0 (group block: 288 bytes)
inline void q4_0_groups(int64_t nb, const uint8_t* g, const block_q8_0* a, float* out) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
  for (int64_t b = 0; b < nb; ++b, g += 288) {
    const block_q8_0& A = a[b];
    const int8x16_t a0 = vld1q_s8(A.qs), a1 = vld1q_s8(A.qs + 16);
    const int32x4_t off = vdupq_n_s32(8 * (vaddlvq_s8(a0) + vaddlvq_s8(a1)));  // the -8 of q4_0's quants
    int32x4_t isum[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    lanes4([&](auto L) {
      constexpr int i = decltype(L)::value;
      for (int q = 0; q < 4; ++q) {
        const uint8x16_t v = vld1q_u8(g + 32 + i * 64 + 16 * q);
        isum[q] = vdotq_laneq_s32(isum[q], u2s(vandq_u8(v, m4)), a0, i);
        isum[q] = vdotq_laneq_s32(isum[q], u2s(vshrq_n_u8(v, 4)), a1, i);
      }
    });
    const float da = Ops::f16(A.d);
    for (int q = 0; q < 4; ++q)
      acc[q] = vmlaq_f32(acc[q], vcvtq_f32_s32(vsubq_s32(isum[q], off)), vmulq_n_f32(f16x4(g + 8 * q), da));
  }
  store_rows(out, acc);
}

// ---------------------------------------------------------------- q4_K (group block: 2304 bytes)
inline void q4_K_groups(int64_t nb, const uint8_t* g, const block_q8_K* a, float* out) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30), m3 = vdupq_n_u8(0x03);
  float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
  for (int64_t b = 0; b < nb; ++b, g += 2304) {
    const block_q8_K& A = a[b];
    const uint8_t* qs = g + 256;
    int32x4_t isum[4], msum[4];
    for (int q = 0; q < 4; ++q) isum[q] = msum[q] = vdupq_n_s32(0);
    for (int c = 0; c < 4; ++c) {
      // Scales and mins of sub-blocks 2c, 2c + 1 for the 16 rows (natural order), then per row quad.
      const uint8x16x2_t lo = vld2q_u8(g + 64 + 32 * c);  // val[e][r] = byte 2r + e
      const uint8x16_t hi = vld1q_u8(g + 192 + 16 * c);
      int32x4_t sc0[4], sc1[4], mn0[4], mn1[4];
      widen_u8(vorrq_u8(vandq_u8(lo.val[0], m4), vshlq_n_u8(vandq_u8(hi, m3), 4)), sc0);
      widen_u8(vorrq_u8(vandq_u8(lo.val[1], m4), vandq_u8(hi, m30)), sc1);
      widen_u8(vorrq_u8(vshrq_n_u8(lo.val[0], 4), vandq_u8(vshlq_n_u8(hi, 2), m30)), mn0);
      widen_u8(vorrq_u8(vshrq_n_u8(lo.val[1], 4), vandq_u8(vshrq_n_u8(hi, 2), m30)), mn1);
      const int b0 = A.bsums[4 * c] + A.bsums[4 * c + 1], b1 = A.bsums[4 * c + 2] + A.bsums[4 * c + 3];
      int32x4_t s0[4], s1[4];
      for (int q = 0; q < 4; ++q) s0[q] = s1[q] = vdupq_n_s32(0);
      for (int half = 0; half < 2; ++half) {
        const int8x16_t alo = vld1q_s8(A.qs + 64 * c + 16 * half), ahi = vld1q_s8(A.qs + 64 * c + 32 + 16 * half);
        lanes4([&](auto L) {
          constexpr int i = decltype(L)::value;
          for (int q = 0; q < 4; ++q) {
            const uint8x16_t v = vld1q_u8(qs + (8 * c + 4 * half + i) * 64 + 16 * q);
            s0[q] = vdotq_laneq_s32(s0[q], u2s(vandq_u8(v, m4)), alo, i);
            s1[q] = vdotq_laneq_s32(s1[q], u2s(vshrq_n_u8(v, 4)), ahi, i);
          }
        });
      }
      for (int q = 0; q < 4; ++q) {
        isum[q] = vmlaq_s32(vmlaq_s32(isum[q], s0[q], sc0[q]), s1[q], sc1[q]);
        msum[q] = vmlaq_n_s32(vmlaq_n_s32(msum[q], mn0[q], b0), mn1[q], b1);
      }
    }
    for (int q = 0; q < 4; ++q) {
      acc[q] = vmlaq_f32(acc[q], vcvtq_f32_s32(isum[q]), vmulq_n_f32(f16x4(g + 8 * q), A.d));
      acc[q] = vmlsq_f32(acc[q], vcvtq_f32_s32(msum[q]), vmulq_n_f32(f16x4(g + 32 + 8 * q), A.d));
    }
  }
  store_rows(out, acc);
}

// ---------------------------------------------------------------- q6_K (group block: 3360 bytes)
// Quants as unsigned 6-bit values; the -32 comes off through the activation sums per 16 quants.
inline void q6_K_groups(int64_t nb, const uint8_t* g, const block_q8_K* a, float* out) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
  float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
  for (int64_t b = 0; b < nb; ++b, g += 3360) {
    const block_q8_K& A = a[b];
    const int8_t* sc = reinterpret_cast<const int8_t*>(g + 32);  // [16 sub-blocks][16 rows]
    const uint8_t* q6 = g + kX16Q6Quants;                        // ql and qh chunks interleaved (interleave.h)
    int32x4_t isum[4];
    for (int q = 0; q < 4; ++q) isum[q] = vdupq_n_s32(0);
    for (int j = 0; j < 16; ++j) {  // minus 32 * scale * bsum
      int32x4_t s[4];
      widen_s8(vld1q_s8(sc + 16 * j), s);
      for (int q = 0; q < 4; ++q) isum[q] = vmlsq_n_s32(isum[q], s[q], 32 * A.bsums[j]);
    }
    for (int n = 0; n < 2; ++n) {
      for (int half = 0; half < 2; ++half) {
        // Quants 128 n + 32 m + l, l in [16 half, 16 half + 16), take scale 8 n + 2 m + half.
        int32x4_t part[4][4];  // [m][q]
        for (int m = 0; m < 4; ++m)
          for (int q = 0; q < 4; ++q) part[m][q] = vdupq_n_s32(0);
        int8x16_t av[4];
        for (int m = 0; m < 4; ++m) av[m] = vld1q_s8(A.qs + 128 * n + 32 * m + 16 * half);
        lanes4([&](auto L) {
          constexpr int i = decltype(L)::value;
          const int l4 = 4 * half + i;
          for (int q = 0; q < 4; ++q) {
            const uint8x16_t x = vld1q_u8(q6 + x16_q6_ql_chunk(16 * n + l4) * 64 + 16 * q);
            const uint8x16_t y = vld1q_u8(q6 + x16_q6_ql_chunk(16 * n + 8 + l4) * 64 + 16 * q);
            const uint8x16_t h = vld1q_u8(q6 + x16_q6_qh_chunk(8 * n + l4) * 64 + 16 * q);
            part[0][q] =
                vdotq_laneq_s32(part[0][q], u2s(vorrq_u8(vandq_u8(x, m4), vandq_u8(vshlq_n_u8(h, 4), m30))), av[0], i);
            part[1][q] =
                vdotq_laneq_s32(part[1][q], u2s(vorrq_u8(vandq_u8(y, m4), vandq_u8(vshlq_n_u8(h, 2), m30))), av[1], i);
            part[2][q] = vdotq_laneq_s32(part[2][q], u2s(vorrq_u8(vshrq_n_u8(x, 4), vandq_u8(h, m30))), av[2], i);
            part[3][q] =
                vdotq_laneq_s32(part[3][q], u2s(vorrq_u8(vshrq_n_u8(y, 4), vandq_u8(vshrq_n_u8(h, 2), m30))), av[3], i);
          }
        });
        for (int m = 0; m < 4; ++m) {
          int32x4_t s[4];
          widen_s8(vld1q_s8(sc + 16 * (8 * n + 2 * m + half)), s);
          for (int q = 0; q < 4; ++q) isum[q] = vmlaq_s32(isum[q], part[m][q], s[q]);
        }
      }
    }
    for (int q = 0; q < 4; ++q) acc[q] = vmlaq_f32(acc[q], vcvtq_f32_s32(isum[q]), vmulq_n_f32(f16x4(g + 8 * q), A.d));
  }
  store_rows(out, acc);
}

}  // namespace x16

// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/simd/gemv_x16_table.h"
// clang-format on
