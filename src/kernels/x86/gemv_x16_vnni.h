// Decode GEMVs over the x16 layouts (kernels/interleave.h) in 64-byte registers with AVX-512 VNNI: one chunk
// (the same quant dword of all 16 rows) is one register, and one vpdpbusd multiplies it by a broadcast
// activation dword and adds the 4 products into each row's 32-bit lane. Against the 32-byte kernels of
// gemv_x16.h (which this path keeps for batches) that is half the loads, no int16 stage and no widening
// vpmaddwd: about 2.3x fewer instructions per weight byte, which is what decode on a 2-core machine is short of.
//
// Lanes follow the chunk's position order (kX16Order); the per-row scales (stored in row order) are brought
// into it with one permute each, and the 16 results go back to row order with one permute per group. Integer sums are
// exact (int32 throughout: a q4_K sub-block sum is at most 32 * 15 * 128, times a 6-bit scale, summed over 8
// sub-blocks: below 2^31); the float epilogue is one FMA per block, as in every path.
//
// Included INSIDE the avx512 path's namespace after ops_x86.h.
#pragma once

namespace x16v {

// GCC 12 flags the unmasked forms of these (they read an "undefined" source) under -Wmaybe-uninitialized;
// the all-ones maskz forms are the same instructions.
constexpr __mmask16 kAll = 0xFFFF;
inline __m512i u16_to_i32(const uint8_t* p) {
  return _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512i u8_to_i32(const uint8_t* p) {
  return _mm512_maskz_cvtepu8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512i i8_to_i32(const uint8_t* p) {
  return _mm512_maskz_cvtepi8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512 to_f(__m512i v) { return _mm512_maskz_cvtepi32_ps(kAll, v); }
inline __m512i shl32(__m512i v, unsigned n) { return _mm512_maskz_slli_epi32(kAll, v, n); }
inline __m512i shr32(__m512i v, unsigned n) { return _mm512_maskz_srli_epi32(kAll, v, n); }
inline __m512i mul32(__m512i a, __m512i b) { return _mm512_maskz_mullo_epi32(kAll, a, b); }
inline __m512i shl16(__m512i v, unsigned n) { return _mm512_maskz_slli_epi16(~__mmask32{0}, v, n); }
inline __m512i shr16(__m512i v, unsigned n) { return _mm512_maskz_srli_epi16(~__mmask32{0}, v, n); }

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
// The 16 f16 values at p (positions 0-15) as floats.
inline __m512 f16x16(const uint8_t* p) {
  return _mm512_maskz_cvtph_ps(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512i nib_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
inline __m512i nib_hi(__m512i v) { return _mm512_and_si512(shr16(v, 4), _mm512_set1_epi8(0x0F)); }
inline __m512i dot4(__m512i acc, __m512i u8, __m512i s8) { return _mm512_dpbusd_epi32(acc, u8, s8); }
// Row r's result is lane kX16Order[r] (the permutation is its own inverse).
inline void store_rows(float* out, __m512 v) {
  const __m512i order = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
  _mm512_storeu_ps(out, _mm512_maskz_permutexvar_ps(kAll, order, v));
}
// 16 dwords of rows 0-15 (natural order) -> position order.
inline __m512i to_positions(__m512i rows) {
  const __m512i order = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
  return _mm512_maskz_permutexvar_epi32(kAll, order, rows);
}

// No software prefetch: with every group block read front to back (the q6_K triplet layout), the hardware
// prefetchers keep up. Measured on a 16384 x 4096 q6_K stream (matmul_16384x4096, 1 / 2 threads): 35.8 / 52.5
// GB/s without; 28.3 / 46.0 prefetching one block ahead; 18.4 / 29.6 four blocks ahead.

// ---------------------------------------------------------------- q4_0 (288 bytes) and q8_0 (544 bytes)
// Each block's accumulator starts at `offset[b]` = -(the format's zero point) * (sum of the block's activation
// quants): q4_0's nibbles are 8 above the value, and q8_0's signed quants are read as unsigned (x ^ 0x80 =
// x + 128, which vpdpbusd needs), so the zero point costs nothing per group.
inline void q4_0_group(int64_t nb, const uint8_t* g, const block_q8_0* a, const int32_t* offset, float* out) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 288) {
    const block_q8_0& A = a[b];
    __m512i s0 = _mm512_set1_epi32(offset[b]), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m512i v = load64(g + 32 + 64 * i);
      s0 = dot4(s0, nib_lo(v), bcast4(A.qs + 4 * i));
      s1 = dot4(s1, nib_hi(v), bcast4(A.qs + 16 + 4 * i));
    }
    const __m512 d = _mm512_mul_ps(f16x16(g), _mm512_set1_ps(Ops::f16(A.d)));
    acc = _mm512_fmadd_ps(to_f(_mm512_add_epi32(s0, s1)), d, acc);
  }
  store_rows(out, acc);
}

inline void q8_0_group(int64_t nb, const uint8_t* g, const block_q8_0* a, const int32_t* offset, float* out) {
  const __m512i flip = _mm512_set1_epi8(-128);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 544) {
    const block_q8_0& A = a[b];
    __m512i s[2] = {_mm512_set1_epi32(offset[b]), _mm512_setzero_si512()};
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      s[i & 1] = dot4(s[i & 1], _mm512_xor_si512(load64(g + 32 + 64 * i), flip), bcast4(A.qs + 4 * i));
    const __m512 d = _mm512_mul_ps(f16x16(g), _mm512_set1_ps(Ops::f16(A.d)));
    acc = _mm512_fmadd_ps(to_f(_mm512_add_epi32(s[0], s[1])), d, acc);
  }
  store_rows(out, acc);
}

// q4_1 (320 bytes): d * da * sum(q * a) + m * s, with s = da * sum(a) from the q8_1 activation block: no zero
// point to fold, the min is one more FMA per block.
inline void q4_1_group(int64_t nb, const uint8_t* g, const block_q8_1* a, float* out) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 320) {
    const block_q8_1& A = a[b];
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m512i v = load64(g + 64 + 64 * i);
      s0 = dot4(s0, nib_lo(v), bcast4(A.qs + 4 * i));
      s1 = dot4(s1, nib_hi(v), bcast4(A.qs + 16 + 4 * i));
    }
    acc = _mm512_fmadd_ps(to_f(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(f16x16(g), _mm512_set1_ps(Ops::f16(A.d))), acc);
    acc = _mm512_fmadd_ps(f16x16(g + 32), _mm512_set1_ps(Ops::f16(A.s)), acc);
  }
  store_rows(out, acc);
}

// q5_0: quant = low nibble | fifth bit << 4, 16 above the value. The fifth bits of chunk i's 4 quants per row
// (bits 4i..4i+3 of the row's qh for the low nibbles, 16+4i.. for the high ones) are spread to bit 4 of each
// byte by one in-lane byte shuffle (the qh byte holding them, copied to the row's 4 bytes), one test against
// the byte's bit (a mask register) and one masked add of 16.
struct Q5Bits {
  __m512i base;  // per dword: its first byte's index in the 16-byte lane, in all 4 bytes
  Q5Bits()
      : base(_mm512_set_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0, 0x0C0C0C0C, 0x08080808, 0x04040404, 0, 0x0C0C0C0C,
                              0x08080808, 0x04040404, 0, 0x0C0C0C0C, 0x08080808, 0x04040404, 0)) {}
  // nib (quants 0..15) plus 16 where bit `first + t` of the row's qh is set, for byte t of each dword.
  template <int First>
  __m512i add(__m512i nib, __m512i qh) const {
    const __m512i bytes = _mm512_shuffle_epi8(qh, _mm512_add_epi8(base, _mm512_set1_epi8(First / 8)));
    const __mmask64 k = _mm512_test_epi8_mask(bytes, _mm512_set1_epi32(0x08040201 << (First % 8)));
    return _mm512_mask_add_epi8(nib, k, nib, _mm512_set1_epi8(16));
  }
};

template <int I>
inline void q5_0_chunk(const Q5Bits& bits, const uint8_t* g, __m512i qh, __m512i& lo, __m512i& hi) {
  const __m512i v = load64(g + 96 + 64 * I);
  lo = bits.add<4 * I>(nib_lo(v), qh);
  hi = bits.add<16 + 4 * I>(nib_hi(v), qh);
}

inline void q5_0_group(int64_t nb, const uint8_t* g, const block_q8_0* a, const int32_t* offset, float* out) {
  const Q5Bits bits;
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 352) {
    const block_q8_0& A = a[b];
    const __m512i qh = load64(g + 32);
    __m512i s0 = _mm512_set1_epi32(offset[b]), s1 = _mm512_setzero_si512(), lo, hi;
    q5_0_chunk<0>(bits, g, qh, lo, hi);
    s0 = dot4(s0, lo, bcast4(A.qs));
    s1 = dot4(s1, hi, bcast4(A.qs + 16));
    q5_0_chunk<1>(bits, g, qh, lo, hi);
    s0 = dot4(s0, lo, bcast4(A.qs + 4));
    s1 = dot4(s1, hi, bcast4(A.qs + 20));
    q5_0_chunk<2>(bits, g, qh, lo, hi);
    s0 = dot4(s0, lo, bcast4(A.qs + 8));
    s1 = dot4(s1, hi, bcast4(A.qs + 24));
    q5_0_chunk<3>(bits, g, qh, lo, hi);
    s0 = dot4(s0, lo, bcast4(A.qs + 12));
    s1 = dot4(s1, hi, bcast4(A.qs + 28));
    const __m512 d = _mm512_mul_ps(f16x16(g), _mm512_set1_ps(Ops::f16(A.d)));
    acc = _mm512_fmadd_ps(to_f(_mm512_add_epi32(s0, s1)), d, acc);
  }
  store_rows(out, acc);
}

inline int32_t q8_0_sum(const block_q8_0& A) {
  // |a| <= 127: the unsigned sum of a + 128 via vpsadbw, minus 32 * 128.
  const __m256i v =
      _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(A.qs)), _mm256_set1_epi8(-128));
  const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
  __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
  return _mm_cvtsi128_si32(t) - 32 * 128;
}

// kernel_table.h's GemvX16Fn for a 32-block format with zero point Zero: the offsets once per call, then
// the groups.
template <int kGroupBytes, int Zero, void (*F)(int64_t, const uint8_t*, const block_q8_0*, const int32_t*, float*)>
void legacy_groups(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a, float* out) {
  static_assert(kGroupBytes > 0);
  const int64_t nb = k / 32;
  const auto* A = reinterpret_cast<const block_q8_0*>(a);
  thread_local std::vector<int32_t> offset;
  if (offset.size() < static_cast<size_t>(nb)) offset.resize(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) offset[static_cast<size_t>(b)] = -Zero * q8_0_sum(A[b]);
  for (int64_t i = 0; i < n_groups; ++i)
    F(nb, w + static_cast<size_t>(i) * group_bytes, A, offset.data(), out + 16 * i);
}

// ---------------------------------------------------------------- q4_K (group block: 2304 bytes)
inline void q4_K_group(int64_t nb, const uint8_t* g, const block_q8_K* a, float* out) {
  const __m512i m4 = _mm512_set1_epi32(0x0F), m30 = _mm512_set1_epi32(0x30);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 2304) {
    const block_q8_K& A = a[b];
    const uint8_t* qs = g + 256;
    __m512i isum = _mm512_setzero_si512(), msum = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      const __m512i lw = to_positions(u16_to_i32(g + 64 + 32 * c));
      const __m512i h = to_positions(u8_to_i32(g + 192 + 16 * c));
      // lw bits: 0-3 scale 2c, 4-7 min 2c, 8-11 scale 2c+1, 12-15 min 2c+1; h: their top 2 bits, 2 by 2.
      const __m512i sc0 = _mm512_or_si512(_mm512_and_si512(lw, m4), _mm512_and_si512(shl32(h, 4), m30));
      const __m512i sc1 = _mm512_or_si512(_mm512_and_si512(shr32(lw, 8), m4), _mm512_and_si512(h, m30));
      const __m512i mn0 = _mm512_or_si512(_mm512_and_si512(shr32(lw, 4), m4), _mm512_and_si512(shl32(h, 2), m30));
      const __m512i mn1 = _mm512_or_si512(_mm512_and_si512(shr32(lw, 12), m4), _mm512_and_si512(shr32(h, 2), m30));
      // Two chains per nibble half (even and odd dwords), so the vpdpbusd latency is hidden.
      __m512i s0[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}, s1[2] = {s0[0], s0[0]};
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) {
        const __m512i v = load64(qs + (8 * c + t) * 64);
        s0[t & 1] = dot4(s0[t & 1], nib_lo(v), bcast4(A.qs + 64 * c + 4 * t));
        s1[t & 1] = dot4(s1[t & 1], nib_hi(v), bcast4(A.qs + 64 * c + 32 + 4 * t));
      }
      isum = _mm512_add_epi32(isum, _mm512_add_epi32(mul32(_mm512_add_epi32(s0[0], s0[1]), sc0),
                                                     mul32(_mm512_add_epi32(s1[0], s1[1]), sc1)));
      // Mins against the sums of the 32 activation quants of each sub-block (two bsums of 16 each).
      const int32_t bs0 = A.bsums[4 * c] + A.bsums[4 * c + 1], bs1 = A.bsums[4 * c + 2] + A.bsums[4 * c + 3];
      msum = _mm512_add_epi32(
          msum, _mm512_madd_epi16(_mm512_or_si512(mn0, shl32(mn1, 16)), _mm512_set1_epi32((bs0 & 0xFFFF) | bs1 << 16)));
    }
    const __m512 da = _mm512_set1_ps(A.d);
    acc = _mm512_fmadd_ps(to_f(isum), _mm512_mul_ps(f16x16(g), da), acc);
    acc = _mm512_fnmadd_ps(to_f(msum), _mm512_mul_ps(f16x16(g + 32), da), acc);
  }
  store_rows(out, acc);
}

inline void q4_K_groups(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a,
                        float* out) {
  for (int64_t i = 0; i < n_groups; ++i)
    q4_K_group(k / 256, w + static_cast<size_t>(i) * group_bytes, reinterpret_cast<const block_q8_K*>(a), out + 16 * i);
}

// ---------------------------------------------------------------- q6_K (group block: 3360 bytes)
// Quants are unsigned 6-bit values; sub-block j's accumulator starts at -32 * bsum(j), which takes the
// format's offset of 32 off before the sub-block's scale multiplies the sum.
// Quant 128 n + 32 m + l of a row: low 4 bits from ql dword 16 n + 8 (m & 1) + l / 4 (low nibble for m < 2,
// high for m >= 2), top 2 bits from bits 2 m .. 2 m + 1 of qh dword 8 n + l / 4; scale 8 n + 2 m + l / 16.
// So the three chunks (ql 16 n + l4, ql 16 n + 8 + l4, qh 8 n + l4) hold the quant dwords l4 of m = 0..3, and
// the layout stores them as one triplet, in this loop's order.
inline void q6_K_group(int64_t nb, const uint8_t* g, const block_q8_K* a, float* out) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  // (x & 0x0F) | y, for y already masked to 0x30: one vpternlogd.
  const auto merge = [&](__m512i x, __m512i y) { return _mm512_ternarylogic_epi32(x, y, m4, 0xEC); };
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 3360) {
    const block_q8_K& A = a[b];
    const uint8_t* sc = g + 32;            // [16 sub-blocks][16 rows] int8
    const uint8_t* q6 = g + kX16Q6Quants;  // ql and qh chunks interleaved, in the order read here (interleave.h)
    __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int n = 0; n < 2; ++n) {
      const int8_t* an = A.qs + 128 * n;
#pragma GCC unroll 2
      for (int half = 0; half < 2; ++half) {
        __m512i s[4];  // sub-blocks 8 n + 2 m + half
#pragma GCC unroll 4
        for (int m = 0; m < 4; ++m) s[m] = _mm512_set1_epi32(-32 * A.bsums[8 * n + 2 * m + half]);
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          const int l4 = 4 * half + i;
          const __m512i ql0 = load64(q6 + x16_q6_ql_chunk(16 * n + l4) * 64);
          const __m512i ql1 = load64(q6 + x16_q6_ql_chunk(16 * n + 8 + l4) * 64);
          const __m512i hb = load64(q6 + x16_q6_qh_chunk(8 * n + l4) * 64);
          s[0] = dot4(s[0], merge(ql0, _mm512_and_si512(shl16(hb, 4), m30)), bcast4(an + 4 * l4));
          s[1] = dot4(s[1], merge(ql1, _mm512_and_si512(shl16(hb, 2), m30)), bcast4(an + 32 + 4 * l4));
          s[2] = dot4(s[2], merge(shr16(ql0, 4), _mm512_and_si512(hb, m30)), bcast4(an + 64 + 4 * l4));
          s[3] = dot4(s[3], merge(shr16(ql1, 4), _mm512_and_si512(shr16(hb, 2), m30)), bcast4(an + 96 + 4 * l4));
        }
#pragma GCC unroll 4
        for (int m = 0; m < 4; ++m)
          isum = _mm512_add_epi32(isum, mul32(s[m], to_positions(i8_to_i32(sc + 16 * (8 * n + 2 * m + half)))));
      }
    }
    acc = _mm512_fmadd_ps(to_f(isum), _mm512_mul_ps(f16x16(g), _mm512_set1_ps(A.d)), acc);
  }
  store_rows(out, acc);
}

inline void q6_K_groups(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a,
                        float* out) {
  for (int64_t i = 0; i < n_groups; ++i)
    q6_K_group(k / 256, w + static_cast<size_t>(i) * group_bytes, reinterpret_cast<const block_q8_K*>(a), out + 16 * i);
}

// ---------------------------------------------------------------- batches: 16 rows x C columns (prefill)
// The same loops with C activation columns: each chunk is loaded and unpacked once and multiplied against C
// columns' broadcast dwords, and the scale decode serves 16 rows x C columns. Accumulators: 2C chains plus C
// sums and C float results live, within the 32 zmm registers for C = 4. `a` holds C q8 rows `as` bytes apart.
// The four 32-block formats share one loop; a format gives its block bytes, activation block, zero point (the
// accumulators start at -zero * sum(a)), an optional min term, and how chunk i (0..3) of a block unpacks into
// the unsigned quants that meet activation dwords i (`lo`) and 4 + i (`hi`).
// q4_0 and q4_1: 4-bit quants at `Quants` bytes into the block, one 64-byte chunk per pair of dwords.
template <class A, int Bytes, int Quants, int Zero, bool Min>
struct Nibble4V {
  using Act = A;
  static constexpr int kBytes = Bytes, kZero = Zero;
  static constexpr bool kMin = Min;
  struct Ctx {};
  static int block(const Ctx&, const uint8_t*) { return 0; }
  template <int I>
  static void chunk(const Ctx&, int, const uint8_t* g, __m512i& lo, __m512i& hi) {
    const __m512i v = load64(g + Quants + 64 * I);
    lo = nib_lo(v);
    hi = nib_hi(v);
  }
};
using Q4_0V = Nibble4V<block_q8_0, 288, 32, 8, false>;  // d[16] | qs
using Q4_1V = Nibble4V<block_q8_1, 320, 64, 0, true>;   // d[16], m[16] | qs
struct Q5_0V {
  using Act = block_q8_0;
  static constexpr int kBytes = 352, kZero = 16;
  static constexpr bool kMin = false;
  using Ctx = Q5Bits;
  static __m512i block(const Ctx&, const uint8_t* g) { return load64(g + 32); }  // the 16 rows' qh
  template <int I>
  static void chunk(const Ctx& bits, __m512i qh, const uint8_t* g, __m512i& lo, __m512i& hi) {
    q5_0_chunk<I>(bits, g, qh, lo, hi);
  }
};
// q8_0's signed quants read as unsigned (x ^ 0x80 = x + 128; the zero point 128 takes it off); chunk i pairs
// quant dwords i and 4 + i.
struct Q8_0V {
  using Act = block_q8_0;
  static constexpr int kBytes = 544, kZero = 128;
  static constexpr bool kMin = false;
  struct Ctx {};
  static int block(const Ctx&, const uint8_t*) { return 0; }
  template <int I>
  static void chunk(const Ctx&, int, const uint8_t* g, __m512i& lo, __m512i& hi) {
    const __m512i flip = _mm512_set1_epi8(-128);
    lo = _mm512_xor_si512(load64(g + 32 + 64 * I), flip);
    hi = _mm512_xor_si512(load64(g + 32 + 64 * (I + 4)), flip);
  }
};

template <class F, int C>
void legacy_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const typename F::Ctx ctx{};
  __m512 acc[C];
  for (int j = 0; j < C; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += F::kBytes) {
    const typename F::Act* A[C];
    __m512i s0[C], s1[C];
    for (int j = 0; j < C; ++j) {
      A[j] = reinterpret_cast<const typename F::Act*>(a + static_cast<size_t>(j) * as) + b;
      if constexpr (F::kZero != 0)
        s0[j] = _mm512_set1_epi32(-F::kZero * q8_0_sum(*A[j]));
      else
        s0[j] = _mm512_setzero_si512();
      s1[j] = _mm512_setzero_si512();
    }
    const auto blk = F::block(ctx, g);
    const auto step = [&](auto I) {
      constexpr int i = decltype(I)::value;
      __m512i lo, hi;
      F::template chunk<i>(ctx, blk, g, lo, hi);
      for (int j = 0; j < C; ++j) {
        s0[j] = dot4(s0[j], lo, bcast4(A[j]->qs + 4 * i));
        s1[j] = dot4(s1[j], hi, bcast4(A[j]->qs + 16 + 4 * i));
      }
    };
    step(x16::IntC<0>{});
    step(x16::IntC<1>{});
    step(x16::IntC<2>{});
    step(x16::IntC<3>{});
    const __m512 d = f16x16(g);
    for (int j = 0; j < C; ++j) {
      acc[j] = _mm512_fmadd_ps(to_f(_mm512_add_epi32(s0[j], s1[j])),
                               _mm512_mul_ps(d, _mm512_set1_ps(Ops::f16(A[j]->d))), acc[j]);
      if constexpr (F::kMin) acc[j] = _mm512_fmadd_ps(f16x16(g + 32), _mm512_set1_ps(Ops::f16(A[j]->s)), acc[j]);
    }
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[j]);
}

template <int C>
void q4_K_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const __m512i m4 = _mm512_set1_epi32(0x0F), m30 = _mm512_set1_epi32(0x30);
  __m512 acc[C];
  for (int j = 0; j < C; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 2304) {
    const block_q8_K* A[C];
    for (int j = 0; j < C; ++j) A[j] = reinterpret_cast<const block_q8_K*>(a + static_cast<size_t>(j) * as) + b;
    const uint8_t* qs = g + 256;
    __m512i isum[C], msum[C];
    for (int j = 0; j < C; ++j) isum[j] = msum[j] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      const __m512i lw = to_positions(u16_to_i32(g + 64 + 32 * c));
      const __m512i h = to_positions(u8_to_i32(g + 192 + 16 * c));
      const __m512i sc0 = _mm512_or_si512(_mm512_and_si512(lw, m4), _mm512_and_si512(shl32(h, 4), m30));
      const __m512i sc1 = _mm512_or_si512(_mm512_and_si512(shr32(lw, 8), m4), _mm512_and_si512(h, m30));
      const __m512i mn0 = _mm512_or_si512(_mm512_and_si512(shr32(lw, 4), m4), _mm512_and_si512(shl32(h, 2), m30));
      const __m512i mn1 = _mm512_or_si512(_mm512_and_si512(shr32(lw, 12), m4), _mm512_and_si512(shr32(h, 2), m30));
      const __m512i mn = _mm512_or_si512(mn0, shl32(mn1, 16));
      __m512i s0[C], s1[C];
      for (int j = 0; j < C; ++j) s0[j] = s1[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) {
        const __m512i v = load64(qs + (8 * c + t) * 64), lo = nib_lo(v), hi = nib_hi(v);
        for (int j = 0; j < C; ++j) {
          s0[j] = dot4(s0[j], lo, bcast4(A[j]->qs + 64 * c + 4 * t));
          s1[j] = dot4(s1[j], hi, bcast4(A[j]->qs + 64 * c + 32 + 4 * t));
        }
      }
      for (int j = 0; j < C; ++j) {
        isum[j] = _mm512_add_epi32(isum[j], _mm512_add_epi32(mul32(s0[j], sc0), mul32(s1[j], sc1)));
        const int32_t bs0 = A[j]->bsums[4 * c] + A[j]->bsums[4 * c + 1],
                      bs1 = A[j]->bsums[4 * c + 2] + A[j]->bsums[4 * c + 3];
        msum[j] = _mm512_add_epi32(msum[j], _mm512_madd_epi16(mn, _mm512_set1_epi32((bs0 & 0xFFFF) | bs1 << 16)));
      }
    }
    const __m512 d = f16x16(g), dm = f16x16(g + 32);
    for (int j = 0; j < C; ++j) {
      const __m512 da = _mm512_set1_ps(A[j]->d);
      acc[j] = _mm512_fmadd_ps(to_f(isum[j]), _mm512_mul_ps(d, da), acc[j]);
      acc[j] = _mm512_fnmadd_ps(to_f(msum[j]), _mm512_mul_ps(dm, da), acc[j]);
    }
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[j]);
}

template <int C>
void q6_K_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const auto merge = [&](__m512i x, __m512i y) { return _mm512_ternarylogic_epi32(x, y, m4, 0xEC); };
  __m512 acc[C];
  for (int j = 0; j < C; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 3360) {
    const block_q8_K* A[C];
    for (int j = 0; j < C; ++j) A[j] = reinterpret_cast<const block_q8_K*>(a + static_cast<size_t>(j) * as) + b;
    const uint8_t* sc = g + 32;
    const uint8_t* q6 = g + kX16Q6Quants;
    __m512i isum[C];
    for (int j = 0; j < C; ++j) isum[j] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int n = 0; n < 2; ++n) {
#pragma GCC unroll 1
      for (int half = 0; half < 2; ++half) {
#pragma GCC unroll 1
        for (int m2 = 0; m2 < 4; m2 += 2) {  // two of the four parts at a time: 2C chains
          __m512i s[2][C];
          for (int e = 0; e < 2; ++e)
            for (int j = 0; j < C; ++j) s[e][j] = _mm512_set1_epi32(-32 * A[j]->bsums[8 * n + 2 * (m2 + e) + half]);
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            const int l4 = 4 * half + i;
            const __m512i ql0 = load64(q6 + x16_q6_ql_chunk(16 * n + l4) * 64);
            const __m512i ql1 = load64(q6 + x16_q6_ql_chunk(16 * n + 8 + l4) * 64);
            const __m512i hb = load64(q6 + x16_q6_qh_chunk(8 * n + l4) * 64);
            // m2 = 0: parts 0 (ql0 low, qh bits 0-1) and 1 (ql1 low, bits 2-3); m2 = 2: parts 2 and 3 (high nibbles).
            const __m512i q0 = m2 == 0 ? merge(ql0, _mm512_and_si512(shl16(hb, 4), m30))
                                       : merge(shr16(ql0, 4), _mm512_and_si512(hb, m30));
            const __m512i q1 = m2 == 0 ? merge(ql1, _mm512_and_si512(shl16(hb, 2), m30))
                                       : merge(shr16(ql1, 4), _mm512_and_si512(shr16(hb, 2), m30));
            for (int j = 0; j < C; ++j) {
              const int8_t* an = A[j]->qs + 128 * n + 32 * m2 + 4 * l4;
              s[0][j] = dot4(s[0][j], q0, bcast4(an));
              s[1][j] = dot4(s[1][j], q1, bcast4(an + 32));
            }
          }
          for (int e = 0; e < 2; ++e) {
            const __m512i scale = to_positions(i8_to_i32(sc + 16 * (8 * n + 2 * (m2 + e) + half)));
            for (int j = 0; j < C; ++j) isum[j] = _mm512_add_epi32(isum[j], mul32(s[e][j], scale));
          }
        }
      }
    }
    const __m512 d = f16x16(g);
    for (int j = 0; j < C; ++j)
      acc[j] = _mm512_fmadd_ps(to_f(isum[j]), _mm512_mul_ps(d, _mm512_set1_ps(A[j]->d)), acc[j]);
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[j]);
}

template <class F>
struct LegacyColsV {
  template <int C>
  struct Of {
    static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
      legacy_cols<F, C>(nb, g, a, as, o, ldo);
    }
  };
};
template <int C>
struct Q4_KColsV {
  static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
    q4_K_cols<C>(nb, g, a, as, o, ldo);
  }
};
template <int C>
struct Q6_KColsV {
  static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
    q6_K_cols<C>(nb, g, a, as, o, ldo);
  }
};

}  // namespace x16v

// The decode GEMVs and the batch GEMMs over the x16 groups (these replace the packed-activation GEMMs for
// interleaved weights: matmul.cpp).
constexpr KernelTable with_x16_gemv_vnni(KernelTable t) {
  t.set_gemv_x16(GgmlType::Q4_0, x16v::legacy_groups<288, 8, x16v::q4_0_group>);
  t.set_gemv_x16(GgmlType::Q4_1, x16::groups<block_q8_1, 32, x16v::q4_1_group>);
  t.set_gemv_x16(GgmlType::Q5_0, x16v::legacy_groups<352, 16, x16v::q5_0_group>);
  t.set_gemv_x16(GgmlType::Q8_0, x16v::legacy_groups<544, 128, x16v::q8_0_group>);
  t.set_gemv_x16(GgmlType::Q4_K, x16v::q4_K_groups);
  t.set_gemv_x16(GgmlType::Q6_K, x16v::q6_K_groups);
  t.set_gemm_x16(GgmlType::Q4_0, x16::group_cols<block_q8_0, 32, x16v::LegacyColsV<x16v::Q4_0V>::Of>);
  t.set_gemm_x16(GgmlType::Q4_1, x16::group_cols<block_q8_1, 32, x16v::LegacyColsV<x16v::Q4_1V>::Of>);
  t.set_gemm_x16(GgmlType::Q5_0, x16::group_cols<block_q8_0, 32, x16v::LegacyColsV<x16v::Q5_0V>::Of>);
  t.set_gemm_x16(GgmlType::Q8_0, x16::group_cols<block_q8_0, 32, x16v::LegacyColsV<x16v::Q8_0V>::Of>);
  t.set_gemm_x16(GgmlType::Q4_K, x16::group_cols<block_q8_K, 256, x16v::Q4_KColsV>);
  t.set_gemm_x16(GgmlType::Q6_K, x16::group_cols<block_q8_K, 256, x16v::Q6_KColsV>);
  return t;
}
