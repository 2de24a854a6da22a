// The AArch64 vector operations the shared kernels (simd/block_dots.h, simd/gemm_tiles.h) are written in:
// the same interface as x86/ops_x86.h (a 32 x int8 block, 8 x int32 sums, 8 x float), each value held in
// two 128-bit NEON registers. Built three times:
//   neon.cpp     ARMv8-A baseline: int8 dots by widening multiplies (SMULL/SMLAL2) and pairwise adds (SADALP);
//   dotprod.cpp  + FEAT_DotProd: SDOT, four 4-byte dots per instruction (__ARM_FEATURE_DOTPROD);
//   i8mm.cpp     + FEAT_I8MM: also SMMLA (a 2x8 by 8x2 int8 matrix product, __ARM_FEATURE_MATMUL_INT8),
//                which the 2 x 2 tiles of block_dots.h's Paired<> use (kPairedTile).
// Only what differs between them is under #if.
//
// Included INSIDE each path's own namespace (after <arm_neon.h>), so the three builds never share a symbol:
// this header has no #includes and uses no standard-library templates (an inline function compiled with
// the dotprod or i8mm flags must never be the copy the linker keeps for the baseline code).
//
// Precondition shared with x86 (where _mm256_sign_epi8 has it too): activation quants are in [-127, 127]
// (our q8 quantizers never produce -128), so a pair of int8 products always fits in int16.
#pragma once

struct Ops {
  using I8 = int8x16x2_t;    // 32 x int8 (or uint8 <= 127 where a function says so)
  using I16 = int16x8x2_t;   // 16 x int16
  using I32 = int32x4x2_t;   // 8 x int32 partial sums: only their total means something
  using F8 = float32x4x2_t;  // 8 x float partial sums

  // ---- bytes ----
  static I8 load_i8(const void* p) {
    const int8_t* q = static_cast<const int8_t*>(p);
    return {{vld1q_s8(q), vld1q_s8(q + 16)}};
  }
  static I8 set_i8(int v) {
    const int8x16_t x = vdupq_n_s8(static_cast<int8_t>(v));
    return {{x, x}};
  }
  // 16 bytes -> 32 values: low nibbles are elements 0..15, high nibbles 16..31 (the 32-blocks' layout).
  static I8 nibbles_split16(const void* p) {
    const uint8x16_t x = vld1q_u8(static_cast<const uint8_t*>(p));
    return {{vreinterpretq_s8_u8(vandq_u8(x, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8(x, 4))}};
  }
  // 32 bytes -> their low (or high) nibbles, in order (the k-quants' layout).
  static I8 nibbles_lo(I8 v) { return and8(v, set_i8(0x0F)); }
  static I8 nibbles_hi(I8 v) { return {{shr4(v.val[0]), shr4(v.val[1])}}; }
  // Per byte: (v << K) & mask, (v >> K) & mask (logical shifts; NEON shifts bytes, so the mask only has to
  // keep the bits the caller wants).
  template <int K>
  static I8 shl_mask(I8 v, int mask) {
    const int8x16_t m = vdupq_n_s8(static_cast<int8_t>(mask));
    return {{vandq_s8(vshlq_n_s8(v.val[0], K), m), vandq_s8(vshlq_n_s8(v.val[1], K), m)}};
  }
  template <int K>
  static I8 shr_mask(I8 v, int mask) {
    const uint8x16_t m = vdupq_n_u8(static_cast<uint8_t>(mask));
    return {{vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(vreinterpretq_u8_s8(v.val[0]), K), m)),
             vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(vreinterpretq_u8_s8(v.val[1]), K), m))}};
  }
  static I8 and8(I8 a, I8 b) { return {{vandq_s8(a.val[0], b.val[0]), vandq_s8(a.val[1], b.val[1])}}; }
  static I8 or8(I8 a, I8 b) { return {{vorrq_s8(a.val[0], b.val[0]), vorrq_s8(a.val[1], b.val[1])}}; }
  static I8 sub8(I8 a, I8 b) { return {{vsubq_s8(a.val[0], b.val[0]), vsubq_s8(a.val[1], b.val[1])}}; }
  // Byte j = 0xFF where bit j of `bits` is set, else 0: byte j/8 of `bits` is spread over 8 lanes (TBL), then
  // lane j tests bit j % 8.
  static I8 bits_to_bytes(uint32_t bits) {
    const uint8x16_t src = vreinterpretq_u8_u32(vdupq_n_u32(bits));
    const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ULL));
    const uint8x16_t lo = vqtbl1q_u8(src, vcombine_u8(vdup_n_u8(0), vdup_n_u8(1)));
    const uint8x16_t hi = vqtbl1q_u8(src, vcombine_u8(vdup_n_u8(2), vdup_n_u8(3)));
    return {{vreinterpretq_s8_u8(vtstq_u8(lo, bit)), vreinterpretq_s8_u8(vtstq_u8(hi, bit))}};
  }
  // Byte j = 0xFF where (v[j] & bit) != 0.
  static I8 test_bit(I8 v, int bit) {
    const uint8x16_t b = vdupq_n_u8(static_cast<uint8_t>(bit));
    return {{vreinterpretq_s8_u8(vtstq_u8(vreinterpretq_u8_s8(v.val[0]), b)),
             vreinterpretq_s8_u8(vtstq_u8(vreinterpretq_u8_s8(v.val[1]), b))}};
  }

  // ---- integer dot products (exact) ----
  static I32 zero_i32() { return {{vdupq_n_s32(0), vdupq_n_s32(0)}}; }
  static I16 load_i16(const void* p) {
    const int16_t* q = static_cast<const int16_t*>(p);
    return {{vld1q_s16(q), vld1q_s16(q + 8)}};
  }
  // Scales for one 32-block: elements 0..15 get `lo`, 16..31 get `hi`.
  static I16 scales_i16(int lo, int hi) {
    return {{vdupq_n_s16(static_cast<int16_t>(lo)), vdupq_n_s16(static_cast<int16_t>(hi))}};
  }
  static I32 madd_i16(I32 acc, I16 a, I16 b) {
    return {{madd16(acc.val[0], a.val[0], b.val[0]), madd16(acc.val[1], a.val[1], b.val[1])}};
  }
  // acc += w . a over the 32 bytes, both signed (w from dot_u8 is <= 127, so the same instructions serve).
  static I32 dot_s8(I32 acc, I8 w, I8 a) {
    return {{dot16(acc.val[0], w.val[0], a.val[0]), dot16(acc.val[1], w.val[1], a.val[1])}};
  }
  static I32 dot_u8(I32 acc, I8 w, I8 a) { return dot_s8(acc, w, a); }
  // acc += sum over the two halves of (w . a) * scale (scales_i16).
  static I32 dot_s8_scaled(I32 acc, I8 w, I8 a, I16 scales) {
    return {{dot16_scaled(acc.val[0], w.val[0], a.val[0], scales.val[0]),
             dot16_scaled(acc.val[1], w.val[1], a.val[1], scales.val[1])}};
  }
  static I32 dot_u8_scaled(I32 acc, I8 w, I8 a, I16 scales) { return dot_s8_scaled(acc, w, a, scales); }
  // Sum of the 8 int32 lanes.
  static int hsum_i32(I32 v) { return vaddvq_s32(vaddq_s32(v.val[0], v.val[1])); }
  // The sums of four I32s, out[0..3] (one reduction tree for the four).
  static void hsum4_i32(I32 a, I32 b, I32 c, I32 d, int32_t* out) {
    const int32x4_t ab = vpaddq_s32(vaddq_s32(a.val[0], a.val[1]), vaddq_s32(b.val[0], b.val[1]));
    const int32x4_t cd = vpaddq_s32(vaddq_s32(c.val[0], c.val[1]), vaddq_s32(d.val[0], d.val[1]));
    vst1q_s32(out, vpaddq_s32(ab, cd));
  }

  // ---- float ----
  static F8 zero_f() { return {{vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}}; }
  static F8 set_f(float v) { return {{vdupq_n_f32(v), vdupq_n_f32(v)}}; }
  static float first_f(F8 v) { return vgetq_lane_f32(v.val[0], 0); }
  static F8 lane0_f(float v) {
    return {{vsetq_lane_f32(v, vdupq_n_f32(0.0f), 0), vdupq_n_f32(0.0f)}};
  }  // (v, 0, ..., 0)
  static F8 mul_f(F8 a, F8 b) { return {{vmulq_f32(a.val[0], b.val[0]), vmulq_f32(a.val[1], b.val[1])}}; }
  static void store_f32(float* p, F8 v) {
    vst1q_f32(p, v.val[0]);
    vst1q_f32(p + 4, v.val[1]);
  }
  static F8 to_f(I32 v) { return {{vcvtq_f32_s32(v.val[0]), vcvtq_f32_s32(v.val[1])}}; }
  static F8 fma(F8 a, F8 b, F8 acc) {  // acc + a * b
    return {{vfmaq_f32(acc.val[0], a.val[0], b.val[0]), vfmaq_f32(acc.val[1], a.val[1], b.val[1])}};
  }
  static F8 load_f32(const float* p) { return {{vld1q_f32(p), vld1q_f32(p + 4)}}; }
  static F8 load_f16(const uint16_t* p) { return {{f16x4(vld1_u16(p)), f16x4(vld1_u16(p + 4))}}; }
  static F8 load_bf16(const uint16_t* p) {
    return {
        {vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)), vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p + 4), 16))}};
  }
  // 8 int8 at p as floats (quantized KV rows).
  static F8 load_i8_f(const void* p) { return widen_f(vmovl_s8(vld1_s8(static_cast<const int8_t*>(p)))); }
  // Bytes 8K .. 8K + 7 of v as floats.
  template <int K>
  static F8 i8_to_f(I8 v) {
    const int8x16_t x = v.val[K / 2];
    return widen_f(K % 2 ? vmovl_high_s8(x) : vmovl_s8(vget_low_s8(x)));
  }
  static float hsum(F8 v) { return vaddvq_f32(vaddq_f32(v.val[0], v.val[1])); }
  static float f16(uint16_t h) { return vgetq_lane_f32(f16x4(vdup_n_u16(h)), 0); }
  static uint16_t to_f16(float v) { return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(v))), 0); }

  // ---- activation quantization (bit-exact with the scalar quantizers) ----
  static F8 abs_f(F8 v) { return {{vabsq_f32(v.val[0]), vabsq_f32(v.val[1])}}; }
  static F8 max_f(F8 a, F8 b) { return {{vmaxq_f32(a.val[0], b.val[0]), vmaxq_f32(a.val[1], b.val[1])}}; }
  static float hmax(F8 v) { return vmaxvq_f32(vmaxq_f32(v.val[0], v.val[1])); }
  static F8 round_away(F8 v) { return {{vrndaq_f32(v.val[0]), vrndaq_f32(v.val[1])}}; }  // C's roundf
  static F8 round_even(F8 v) { return {{vrndnq_f32(v.val[0]), vrndnq_f32(v.val[1])}}; }  // C's rint
  static F8 add_f(F8 a, F8 b) { return {{vaddq_f32(a.val[0], b.val[0]), vaddq_f32(a.val[1], b.val[1])}}; }
  static F8 sub_f(F8 a, F8 b) { return {{vsubq_f32(a.val[0], b.val[0]), vsubq_f32(a.val[1], b.val[1])}}; }
  // 2^n for lanes holding integral values n in [-126, 127] (the exponent field built directly).
  static F8 exp2_int_f(F8 n) {
    const auto one = [](float32x4_t v) {
      return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(v), vdupq_n_s32(127)), 23));
    };
    return {{one(n.val[0]), one(n.val[1])}};
  }
  // Each lane rounded to the nearest f16 value (ties to even) and back.
  static F8 round_f16_f(F8 v) { return {{vcvt_f32_f16(vcvt_f16_f32(v.val[0])), vcvt_f32_f16(vcvt_f16_f32(v.val[1]))}}; }
  // Four vectors of integral floats -> 32 int8, saturating (also +-inf), in order.
  static int16x8_t narrow_sat(F8 v) {
    const float32x4_t lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(127.0f);
    const int32x4_t a = vcvtq_s32_f32(vminq_f32(vmaxq_f32(v.val[0], lo), hi));
    const int32x4_t b = vcvtq_s32_f32(vminq_f32(vmaxq_f32(v.val[1], lo), hi));
    return vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
  }
  static I8 pack_i8(F8 a, F8 b, F8 c, F8 d) {
    return {{vcombine_s8(vqmovn_s16(narrow_sat(a)), vqmovn_s16(narrow_sat(b))),
             vcombine_s8(vqmovn_s16(narrow_sat(c)), vqmovn_s16(narrow_sat(d)))}};
  }
  static void store_i8(void* p, I8 v) {
    vst1q_s8(static_cast<int8_t*>(p), v.val[0]);
    vst1q_s8(static_cast<int8_t*>(p) + 16, v.val[1]);
  }
  static int sum_i8(I8 v) { return vaddlvq_s8(v.val[0]) + vaddlvq_s8(v.val[1]); }

#if defined(__ARM_FEATURE_MATMUL_INT8)
  // ---- 2 x 2 tiles (block_dots.h's Paired<>): two weight rows w0, w1 against two activation columns a0, a1.
  // A 2x2 result is one register, in SMMLA's order: (w0.a0, w0.a1, w1.a0, w1.a1).
  static constexpr bool kPairedTile = true;
  using P32 = int32x4_t;
  using PF = float32x4_t;
  static P32 pair_zero_i32() { return vdupq_n_s32(0); }
  // acc += the 2x2 dots over 32 bytes: each SMMLA takes 8 bytes of both rows and 8 of both columns.
  static P32 pair_dot(P32 acc, I8 w0, I8 w1, I8 a0, I8 a1) {
    acc = pair_dot16(acc, w0.val[0], w1.val[0], a0.val[0], a1.val[0]);
    return pair_dot16(acc, w0.val[1], w1.val[1], a0.val[1], a1.val[1]);
  }
  // acc += sum over the two halves of the 2x2 dots times each row's scale (scales_i16 of row 0 and row 1).
  static P32 pair_dot_scaled(P32 acc, I8 w0, I8 w1, I8 a0, I8 a1, I16 sc0, I16 sc1) {
    const P32 z = vdupq_n_s32(0);
    acc = vmlaq_s32(acc, pair_dot16(z, w0.val[0], w1.val[0], a0.val[0], a1.val[0]), row_scales(sc0.val[0], sc1.val[0]));
    return vmlaq_s32(acc, pair_dot16(z, w0.val[1], w1.val[1], a0.val[1], a1.val[1]),
                     row_scales(sc0.val[1], sc1.val[1]));
  }
  // (w0 * a0, w0 * a1, w1 * a0, w1 * a1): the 2x2 products of per-row and per-column floats.
  static PF pair_outer(float w0, float w1, float a0, float a1) {
    const float32x2_t a = vset_lane_f32(a1, vdup_n_f32(a0), 1);
    return vmulq_f32(vcombine_f32(vdup_n_f32(w0), vdup_n_f32(w1)), vcombine_f32(a, a));
  }
  // The same four outputs from 16 x int16 (mins) against two columns' 16 x int16 (bsums), as int32.
  static P32 pair_madd_i16(I16 m0, I16 m1, I16 b0, I16 b1) {
    const int32_t v[4] = {madd_total(m0, b0), madd_total(m0, b1), madd_total(m1, b0), madd_total(m1, b1)};
    return vld1q_s32(v);
  }
  static PF pair_zero_f() { return vdupq_n_f32(0.0f); }
  static PF pair_to_f(P32 v) { return vcvtq_f32_s32(v); }
  static PF pair_fma(PF a, PF b, PF acc) { return vfmaq_f32(acc, a, b); }  // acc + a * b
  static PF pair_add(PF a, PF b) { return vaddq_f32(a, b); }
  static void pair_store(float* out, PF v) { vst1q_f32(out, v); }
#endif

 private:
  static F8 widen_f(int16x8_t w) {
    return {{vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), vcvtq_f32_s32(vmovl_high_s16(w))}};
  }
  static int8x16_t shr4(int8x16_t v) { return vreinterpretq_s8_u8(vshrq_n_u8(vreinterpretq_u8_s8(v), 4)); }
  static float32x4_t f16x4(uint16x4_t h) { return vcvt_f32_f16(vreinterpret_f16_u16(h)); }
  static int32x4_t madd16(int32x4_t acc, int16x8_t a, int16x8_t b) {
    return vmlal_high_s16(vmlal_s16(acc, vget_low_s16(a), vget_low_s16(b)), a, b);
  }
#if defined(__ARM_FEATURE_DOTPROD)
  // SDOT: lane i += the dot of bytes 4i..4i+3.
  static int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t a) { return vdotq_s32(acc, w, a); }
  static int32x4_t dot16_scaled(int32x4_t acc, int8x16_t w, int8x16_t a, int16x8_t scale) {
    return vmlaq_s32(acc, vdotq_s32(vdupq_n_s32(0), w, a), vmovl_s16(vget_low_s16(scale)));
  }
#else
  // Products of bytes i and i + 8 summed in int16 (|w| <= 128, |a| <= 127: at most 32512), then pairwise
  // into the int32 lanes.
  static int16x8_t mul_pairs(int8x16_t w, int8x16_t a) {
    return vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(a)), w, a);
  }
  static int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t a) { return vpadalq_s16(acc, mul_pairs(w, a)); }
  // Scaled quants are small (|w| <= 32), so the int16 pair sums times an int16 scale fit int32 exactly.
  static int32x4_t dot16_scaled(int32x4_t acc, int8x16_t w, int8x16_t a, int16x8_t scale) {
    return madd16(acc, mul_pairs(w, a), scale);
  }
#endif
#if defined(__ARM_FEATURE_MATMUL_INT8)
  static P32 pair_dot16(P32 acc, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    const int64x2_t x0 = vreinterpretq_s64_s8(w0), x1 = vreinterpretq_s64_s8(w1);
    const int64x2_t y0 = vreinterpretq_s64_s8(a0), y1 = vreinterpretq_s64_s8(a1);
    acc = vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip1q_s64(x0, x1)), vreinterpretq_s8_s64(vzip1q_s64(y0, y1)));
    return vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip2q_s64(x0, x1)), vreinterpretq_s8_s64(vzip2q_s64(y0, y1)));
  }
  // (s0, s0, s1, s1) from two rows' scale vectors (every lane of each holds that row's scale).
  static int32x4_t row_scales(int16x8_t s0, int16x8_t s1) {
    const int32x2_t lo0 = vreinterpret_s32_s16(vget_low_s16(s0)), lo1 = vreinterpret_s32_s16(vget_low_s16(s1));
    return vmovl_s16(vreinterpret_s16_s32(vzip1_s32(lo0, lo1)));
  }
  static int32_t madd_total(I16 a, I16 b) {
    return vaddvq_s32(madd16(madd16(vdupq_n_s32(0), a.val[0], b.val[0]), a.val[1], b.val[1]));
  }
#endif
};

// Tile shapes (rows, activation columns per GEMM tile), chosen by the instructions per output of each
// format's inner loop (static count from objdump, spills included; docs/kernels.md has the table: qemu
// cannot time them). Every Ops value takes two of NEON's 32 registers and a k-quant super-block unpacks
// to more registers than there are, so 2 x 2 beats AVX2's 4 x 2 for every format (q4_K: 135 against 184
// instructions per output with SDOT). i8mm's 2 x 2 SMMLA accumulators take one register each, so it
// affords 4 columns (q4_0: 9.2 against 12.2 at 2 x 2).
#if defined(__ARM_FEATURE_MATMUL_INT8)
inline constexpr int kTileRows = 2, kTileCols = 4;
#else
inline constexpr int kTileRows = 2, kTileCols = 2;
#endif
// The quantized-KV K . Q tiles (simd/kv_rows.h): K rows x queries.
inline constexpr int kKvTileRows = kTileRows, kKvTileCols = kTileCols;
// The quantized-KV P . V accumulators (simd/kv_rows.h): queries x 8-float vectors (two registers each) held
// across the rows.
inline constexpr int kKvPvAccumulators = 8;
