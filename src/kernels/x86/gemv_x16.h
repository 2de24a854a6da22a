// Decode GEMVs over row-interleaved weights (kernels/interleave.h: 16 rows per group) in 32-byte registers,
// for q4_0, q4_K and q6_K. A 64-byte chunk of a group holds the same quant dword of 16 rows; its two halves
// are the rows at positions 0-7 and 8-15. Each half is multiplied against one broadcast activation dword
// (vpmaddubsw), so each 32-bit lane of a result is one row: no horizontal sums, one scale decode serves 16
// rows, and each group is one sequential stream the hardware prefetcher follows.
//
// Integer sums are exact (int16 partial sums are bounded below 32767 by the format's ranges, noted at each
// kernel); the float epilogue is one FMA per block, so results differ from the scalar reference only by float
// summation order, like every path's.
//
// Included INSIDE an x86 path's namespace after ops_x86.h.
#pragma once

namespace x16 {

template <int I>
struct IntC {
  static constexpr int value = I;
};

inline __m256i bcast4(const int8_t* p) { return _mm256_broadcastd_epi32(_mm_loadu_si32(p)); }
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
// 8 f16 values (the rows of one half, in position order) as floats.
inline __m256 f16x8(const uint8_t* p) { return _mm256_cvtph_ps(load16(p)); }
inline __m256i nib_lo(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
inline __m256i nib_hi(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }
// Software prefetch of a group's stream `Ahead` bytes past the block being read (one prefetch per line of the
// block). One group is one sequential stream, so this only keeps more lines in flight than the hardware
// prefetcher does. Measured on llama-1b decode (Zen 3, medians of 3; run-to-run spread ~10 %): q4_0 gains
// at 2 threads (27.1 -> 30.0 t/s at 2 KiB, 30.7 at 8 KiB, 30.0 at 4 KiB) and 1 thread (15.9 -> 21.7 / 19.1 /
// 18.7); q4_K does not (2 threads 25.4 -> 23.2 / 24.3 / 21.4 per block, 21.2 with one prefetch per chunk in
// the inner loop), so only q4_0 prefetches.
template <size_t Ahead>
inline void prefetch_block(const uint8_t* block, size_t bytes) {
  if constexpr (Ahead > 0)
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(block) + Ahead + o, _MM_HINT_T0);
}
// Results of the two halves (positions 0-7 = rows 0-3, 8-11; positions 8-15 = rows 4-7, 12-15) in row order.
inline void store_rows(float* out, __m256 h0, __m256 h1) {
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(h0, h1, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(h0, h1, 0x31));
}
// The sum of the 32 quants of a q8_0 block, in every lane.
inline __m256i sum_all(__m256i av) {
  __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), av), _mm256_set1_epi16(1));
  s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));
  s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
  return _mm256_add_epi32(s, _mm256_permute2x128_si256(s, s, 1));
}

// ---------------------------------------------------------------- q4_0 (group block: 288 bytes)
// Per half, the 8 products of a 32-block (low and high nibbles of 4 dwords) add up in int16 lanes: each is at
// most 2 * 15 * 127 = 3810, eight of them 30480.
inline void q4_0_groups(int64_t nb, const uint8_t* g, const block_q8_0* a, float* out) {
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b, g += 288) {
    prefetch_block<2048>(g, 288);
    const block_q8_0& A = a[b];
    const __m256i off = _mm256_slli_epi32(sum_all(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(A.qs))), 3);
    const __m256 da = _mm256_set1_ps(Ops::f16(A.d));
    const uint8_t* qs = g + 32;
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m256i v = load32(qs + (i * 16 + 8 * h) * 4);
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(nib_lo(v), bcast4(A.qs + 4 * i)));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(nib_hi(v), bcast4(A.qs + 16 + 4 * i)));
      }
      const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), off);  // minus 8 * sum(a)
      acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(f16x8(g + 16 * h), da), acc[h]);
    }
  }
  store_rows(out, acc[0], acc[1]);
}

// ---------------------------------------------------------------- q4_K (group block: 2304 bytes)
// 16 rows' (scale, min) pairs of q4_K sub-blocks 2c and 2c + 1 in a group block: byte 2r + e of sc / mn
// (6-bit values, rows in natural order).
inline void q4_K_scales(const uint8_t* g, int c, __m256i& sc, __m256i& mn) {
  const __m256i w30 = _mm256_set1_epi16(0x0030), w3000 = _mm256_set1_epi16(0x3000);
  const __m256i lo = load32(g + 64 + 32 * c);
  const __m256i hw = _mm256_cvtepu8_epi16(load16(g + 192 + 16 * c));
  sc = _mm256_or_si256(nib_lo(lo), _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(hw, 4), w30),
                                                   _mm256_and_si256(_mm256_slli_epi16(hw, 8), w3000)));
  mn = _mm256_or_si256(nib_hi(lo), _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(hw, 2), w30),
                                                   _mm256_and_si256(_mm256_slli_epi16(hw, 6), w3000)));
}

// Per sub-block (32 quants) and half, 8 products of at most 2 * 15 * 128 = 3840 add up in int16 lanes (30720);
// one vpmaddwd then applies the 6-bit scale, duplicated into both words of the row's lane.
inline void q4_K_groups(int64_t nb, const uint8_t* g, const block_q8_K* a, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
  // (scale 2c, scale 2c + 1) words of a lane -> (scale 2c, scale 2c) / (scale 2c + 1, scale 2c + 1).
  const __m256i dup0 = _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8,
                                        9, 8, 9, 12, 13, 12, 13);
  const __m256i dup1 = _mm256_add_epi8(dup0, _mm256_set1_epi8(2));
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b, g += 2304) {
    const block_q8_K& A = a[b];
    // Sums of 32 quants: word j = bsum(2j) + bsum(2j + 1); lane c = (sum 2c, sum 2c + 1).
    alignas(16) int32_t bs32[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(bs32), _mm_hadd_epi16(load16(A.bsums), load16(A.bsums + 8)));
    const uint8_t* qs = g + 256;
    __m256i isum[2] = {zero, zero}, msum[2] = {zero, zero};
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      __m256i sc, mn;
      q4_K_scales(g, c, sc, mn);
      const __m256i bsum = _mm256_set1_epi32(bs32[c]);
      // The two halves side by side, so each broadcast activation serves 16 rows (and nothing spills).
      __m256i s0[2] = {zero, zero}, s1[2] = {zero, zero};
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) {
        const __m256i alo = bcast4(A.qs + 64 * c + 4 * t), ahi = bcast4(A.qs + 64 * c + 32 + 4 * t);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256i v = load32(qs + ((8 * c + t) * 16 + 8 * h) * 4);
          s0[h] = _mm256_add_epi16(s0[h], _mm256_maddubs_epi16(_mm256_and_si256(v, m4), alo));
          s1[h] = _mm256_add_epi16(s1[h], _mm256_maddubs_epi16(nib_hi(v), ahi));
        }
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        // Rows 0-3, 8-11 (h = 0) or 4-7, 12-15 (h = 1): the in-lane unpack of the naturally ordered pairs.
        const __m256i scw = h == 0 ? _mm256_unpacklo_epi8(sc, zero) : _mm256_unpackhi_epi8(sc, zero);
        const __m256i mnw = h == 0 ? _mm256_unpacklo_epi8(mn, zero) : _mm256_unpackhi_epi8(mn, zero);
        isum[h] = _mm256_add_epi32(isum[h], _mm256_add_epi32(_mm256_madd_epi16(s0[h], _mm256_shuffle_epi8(scw, dup0)),
                                                             _mm256_madd_epi16(s1[h], _mm256_shuffle_epi8(scw, dup1))));
        msum[h] = _mm256_add_epi32(msum[h], _mm256_madd_epi16(mnw, bsum));
      }
    }
    const __m256 da = _mm256_set1_ps(A.d);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[h]), _mm256_mul_ps(f16x8(g + 16 * h), da), acc[h]);
      acc[h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[h]), _mm256_mul_ps(f16x8(g + 32 + 16 * h), da), acc[h]);
    }
  }
  store_rows(out, acc[0], acc[1]);
}

// ---------------------------------------------------------------- q6_K (group block: 3360 bytes)
// Quants are unsigned 6-bit values (the -32 comes off through the activation sums): a product pair is at most
// 2 * 63 * 128 = 16128, so two of them add up in int16 before vpmaddwd applies the sub-block's scale.
//
// Quant 128 n + 32 m + l (l < 32) of a row: low 4 bits from ql dword 16 n + 8 (m & 1) + l / 4 (low nibble for
// m < 2, high for m >= 2), top 2 bits from bits 2 m .. 2 m + 1 of qh dword 8 n + l / 4; it takes scale
// 8 n + 2 m + l / 16. The chunks of those dwords: x16_q6_ql_chunk / x16_q6_qh_chunk (interleave.h).
template <int M>
inline __m256i q6_quants(const uint8_t* ql, const uint8_t* qh, int n, int l4, int h) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m256i lo = load32(ql + x16_q6_ql_chunk(16 * n + 8 * (M & 1) + l4) * 64 + 32 * h);
  const __m256i hb = load32(qh + x16_q6_qh_chunk(8 * n + l4) * 64 + 32 * h);
  const __m256i low = M < 2 ? _mm256_and_si256(lo, m4) : nib_hi(lo);
  const __m256i top = M == 0   ? _mm256_slli_epi16(hb, 4)
                      : M == 1 ? _mm256_slli_epi16(hb, 2)
                      : M == 2 ? hb
                               : _mm256_srli_epi16(hb, 2);
  return _mm256_or_si256(low, _mm256_and_si256(top, m30));
}

// One sub-block (16 quants of each row) for both halves: isum[h] += scale * sum(q * a).
template <int M>
inline void q6_sub(const block_q8_K& A, const uint8_t* sc, const uint8_t* ql, const uint8_t* qh, int n, int half,
                   __m256i (&isum)[2]) {
  const __m256i w = _mm256_cvtepi8_epi16(load16(sc + 16 * (8 * n + 2 * M + half)));
  const __m256i s[2] = {_mm256_unpacklo_epi16(w, w), _mm256_unpackhi_epi16(w, w)};  // rows of each half, doubled
#pragma GCC unroll 2
  for (int pair = 0; pair < 2; ++pair) {
    __m256i p[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i) {
      const int l4 = 4 * half + 2 * pair + i;
      const __m256i a = bcast4(A.qs + 128 * n + 32 * M + 4 * l4);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h)
        p[h] = _mm256_add_epi16(p[h], _mm256_maddubs_epi16(q6_quants<M>(ql, qh, n, l4, h), a));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) isum[h] = _mm256_add_epi32(isum[h], _mm256_madd_epi16(p[h], s[h]));
  }
}

inline void q6_K_groups(int64_t nb, const uint8_t* g, const block_q8_K* a, float* out) {
  const __m256i zero = _mm256_setzero_si256();
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < nb; ++b, g += 3360) {
    const block_q8_K& A = a[b];
    const uint8_t* sc = g + 32;            // [16 sub-blocks][16 rows] int8
    const uint8_t* ql = g + kX16Q6Quants;  // ql and qh chunks interleaved (interleave.h)
    const uint8_t* qh = ql;
    alignas(32) int32_t bs16[8];  // lane p = (bsum 2p, bsum 2p + 1)
    _mm256_store_si256(reinterpret_cast<__m256i*>(bs16), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A.bsums)));
    // -32 * sum over sub-blocks of scale * bsum, per row.
    __m256i off[2] = {zero, zero};
#pragma GCC unroll 8
    for (int p = 0; p < 8; ++p) {
      const __m256i w0 = _mm256_cvtepi8_epi16(load16(sc + 32 * p)), w1 = _mm256_cvtepi8_epi16(load16(sc + 32 * p + 16));
      const __m256i bp = _mm256_set1_epi32(bs16[p]);
      off[0] = _mm256_add_epi32(off[0], _mm256_madd_epi16(_mm256_unpacklo_epi16(w0, w1), bp));
      off[1] = _mm256_add_epi32(off[1], _mm256_madd_epi16(_mm256_unpackhi_epi16(w0, w1), bp));
    }
    __m256i isum[2] = {_mm256_sub_epi32(zero, _mm256_slli_epi32(off[0], 5)),
                       _mm256_sub_epi32(zero, _mm256_slli_epi32(off[1], 5))};
#pragma GCC unroll 1
    for (int n = 0; n < 2; ++n) {
#pragma GCC unroll 1
      for (int half = 0; half < 2; ++half) {
        q6_sub<0>(A, sc, ql, qh, n, half, isum);
        q6_sub<1>(A, sc, ql, qh, n, half, isum);
        q6_sub<2>(A, sc, ql, qh, n, half, isum);
        q6_sub<3>(A, sc, ql, qh, n, half, isum);
      }
    }
    const __m256 da = _mm256_set1_ps(A.d);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
      acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[h]), _mm256_mul_ps(f16x8(g + 16 * h), da), acc[h]);
  }
  store_rows(out, acc[0], acc[1]);
}

// ---------------------------------------------------------------- batches: 16 rows x C columns
// Prefill over the same layouts: each 32-byte half of a chunk is unpacked once and multiplied against C
// columns' broadcast activations (C = 4: 8 int16 accumulators, the rest in L1), so the unpacking and the
// scale decode are shared by 4 columns, as the weight bytes are.
template <int C>
inline void q4_0_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc[2][C];
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < C; ++j) acc[h][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 288) {
    const block_q8_0* A[C];
    __m256i off[C];
    for (int j = 0; j < C; ++j) {
      A[j] = reinterpret_cast<const block_q8_0*>(a + static_cast<size_t>(j) * as) + b;
      off[j] = _mm256_slli_epi32(sum_all(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(A[j]->qs))), 3);
    }
#pragma GCC unroll 1
    for (int h = 0; h < 2; ++h) {
      __m256i s[C];
      for (int j = 0; j < C; ++j) s[j] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m256i v = load32(g + 32 + (i * 16 + 8 * h) * 4);
        const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
        for (int j = 0; j < C; ++j) {
          s[j] = _mm256_add_epi16(s[j], _mm256_maddubs_epi16(lo, bcast4(A[j]->qs + 4 * i)));
          s[j] = _mm256_add_epi16(s[j], _mm256_maddubs_epi16(hi, bcast4(A[j]->qs + 16 + 4 * i)));
        }
      }
      const __m256 d = f16x8(g + 16 * h);
      for (int j = 0; j < C; ++j)
        acc[h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_madd_epi16(s[j], ones), off[j])),
                                    _mm256_mul_ps(d, _mm256_set1_ps(Ops::f16(A[j]->d))), acc[h][j]);
    }
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[0][j], acc[1][j]);
}

template <int C>
inline void q4_K_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
  const __m256i dup0 = _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8,
                                        9, 8, 9, 12, 13, 12, 13);
  const __m256i dup1 = _mm256_add_epi8(dup0, _mm256_set1_epi8(2));
  __m256 acc[2][C];
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < C; ++j) acc[h][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 2304) {
    const block_q8_K* A[C];
    alignas(16) int32_t bs32[C][4];
    for (int j = 0; j < C; ++j) {
      A[j] = reinterpret_cast<const block_q8_K*>(a + static_cast<size_t>(j) * as) + b;
      _mm_store_si128(reinterpret_cast<__m128i*>(bs32[j]),
                      _mm_hadd_epi16(load16(A[j]->bsums), load16(A[j]->bsums + 8)));
    }
    const uint8_t* qs = g + 256;
#pragma GCC unroll 1
    for (int h = 0; h < 2; ++h) {
      __m256i isum[C], msum[C];
      for (int j = 0; j < C; ++j) isum[j] = msum[j] = zero;
#pragma GCC unroll 1
      for (int c = 0; c < 4; ++c) {
        __m256i sc, mn;
        q4_K_scales(g, c, sc, mn);
        __m256i s0[C], s1[C];
        for (int j = 0; j < C; ++j) s0[j] = s1[j] = zero;
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) {
          const __m256i v = load32(qs + ((8 * c + t) * 16 + 8 * h) * 4);
          const __m256i lo = _mm256_and_si256(v, m4), hi = nib_hi(v);
#pragma GCC unroll 4
          for (int j = 0; j < C; ++j) {
            s0[j] = _mm256_add_epi16(s0[j], _mm256_maddubs_epi16(lo, bcast4(A[j]->qs + 64 * c + 4 * t)));
            s1[j] = _mm256_add_epi16(s1[j], _mm256_maddubs_epi16(hi, bcast4(A[j]->qs + 64 * c + 32 + 4 * t)));
          }
        }
        const __m256i scw = h == 0 ? _mm256_unpacklo_epi8(sc, zero) : _mm256_unpackhi_epi8(sc, zero);
        const __m256i mnw = h == 0 ? _mm256_unpacklo_epi8(mn, zero) : _mm256_unpackhi_epi8(mn, zero);
        const __m256i sc0 = _mm256_shuffle_epi8(scw, dup0), sc1 = _mm256_shuffle_epi8(scw, dup1);
        for (int j = 0; j < C; ++j) {
          isum[j] =
              _mm256_add_epi32(isum[j], _mm256_add_epi32(_mm256_madd_epi16(s0[j], sc0), _mm256_madd_epi16(s1[j], sc1)));
          msum[j] = _mm256_add_epi32(msum[j], _mm256_madd_epi16(mnw, _mm256_set1_epi32(bs32[j][c])));
        }
      }
      const __m256 d = f16x8(g + 16 * h), dm = f16x8(g + 32 + 16 * h);
      for (int j = 0; j < C; ++j) {
        const __m256 da = _mm256_set1_ps(A[j]->d);
        acc[h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(d, da), acc[h][j]);
        acc[h][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[j]), _mm256_mul_ps(dm, da), acc[h][j]);
      }
    }
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[0][j], acc[1][j]);
}

template <int C>
inline void q6_K_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const __m256i zero = _mm256_setzero_si256();
  __m256 acc[2][C];
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < C; ++j) acc[h][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 3360) {
    const block_q8_K* A[C];
    for (int j = 0; j < C; ++j) A[j] = reinterpret_cast<const block_q8_K*>(a + static_cast<size_t>(j) * as) + b;
    const uint8_t* sc = g + 32;
    const uint8_t* ql = g + kX16Q6Quants;  // ql and qh chunks interleaved (interleave.h)
    const uint8_t* qh = ql;
#pragma GCC unroll 1
    for (int h = 0; h < 2; ++h) {
      __m256i isum[C];
      for (int j = 0; j < C; ++j) {  // -32 * sum over sub-blocks of scale * bsum
        __m256i off = zero;
        for (int p = 0; p < 8; ++p) {
          const __m256i w0 = _mm256_cvtepi8_epi16(load16(sc + 32 * p)),
                        w1 = _mm256_cvtepi8_epi16(load16(sc + 32 * p + 16));
          const __m256i pair = h == 0 ? _mm256_unpacklo_epi16(w0, w1) : _mm256_unpackhi_epi16(w0, w1);
          int32_t bp;
          __builtin_memcpy(&bp, A[j]->bsums + 2 * p, 4);
          off = _mm256_add_epi32(off, _mm256_madd_epi16(pair, _mm256_set1_epi32(bp)));
        }
        isum[j] = _mm256_sub_epi32(zero, _mm256_slli_epi32(off, 5));
      }
#pragma GCC unroll 1
      for (int n = 0; n < 2; ++n)
#pragma GCC unroll 1
        for (int half = 0; half < 2; ++half) {
          auto sub = [&](auto M) {
            constexpr int m = decltype(M)::value;
            const __m256i w = _mm256_cvtepi8_epi16(load16(sc + 16 * (8 * n + 2 * m + half)));
            const __m256i s = h == 0 ? _mm256_unpacklo_epi16(w, w) : _mm256_unpackhi_epi16(w, w);
#pragma GCC unroll 2
            for (int pair = 0; pair < 2; ++pair) {
              __m256i p[C];
              for (int j = 0; j < C; ++j) p[j] = zero;
#pragma GCC unroll 2
              for (int i = 0; i < 2; ++i) {
                const int l4 = 4 * half + 2 * pair + i;
                const __m256i q = q6_quants<m>(ql, qh, n, l4, h);
                for (int j = 0; j < C; ++j)
                  p[j] = _mm256_add_epi16(p[j], _mm256_maddubs_epi16(q, bcast4(A[j]->qs + 128 * n + 32 * m + 4 * l4)));
              }
              for (int j = 0; j < C; ++j) isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(p[j], s));
            }
          };
          sub(IntC<0>{});
          sub(IntC<1>{});
          sub(IntC<2>{});
          sub(IntC<3>{});
        }
      const __m256 d = f16x8(g + 16 * h);
      for (int j = 0; j < C; ++j)
        acc[h][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(d, _mm256_set1_ps(A[j]->d)), acc[h][j]);
    }
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[0][j], acc[1][j]);
}

// ---------------------------------------------------------------- q4_1, q5_0, q8_0 (32-blocks), 16 rows x C columns
// One loop for the three legacy formats besides q4_0; a format gives its block bytes, activation block, zero
// point and how dword chunk i (0..3) of half h unpacks into the quants multiplied by activation dwords i
// (`lo`) and 4 + i (`hi`). Unsigned formats: two vpmaddubsw products of at most 2 * 31 * 127 = 7874 per int16
// lane, widened per chunk. q8_0 is signed: |w| times a with w's sign (vpsignb), each product pair at most
// 2 * 128 * 127 = 32512, widened one by one. The decode GEMV is the C = 1 case.
struct Q4_1Fmt {
  using Act = block_q8_1;
  static constexpr int kBytes = 320, kZero = 0;
  static constexpr bool kSigned = false, kMin = true;
  static void chunk(const uint8_t* g, int h, int i, __m256i& lo, __m256i& hi) {
    const __m256i v = load32(g + 64 + (i * 16 + 8 * h) * 4);
    lo = nib_lo(v);
    hi = nib_hi(v);
  }
};
// q5_0: the fifth bits of the 4 quants of a dword are bits 4i..4i+3 (low nibbles) and 16+4i.. (high nibbles)
// of the row's qh; one in-lane shuffle copies the qh byte holding them to the row's 4 bytes, one compare
// against each byte's bit turns them into 0x10.
struct Q5_0Fmt {
  using Act = block_q8_0;
  static constexpr int kBytes = 352, kZero = 16;
  static constexpr bool kSigned = false, kMin = false;
  static __m256i fifth(__m256i qh, int byte, int shift) {
    const __m256i idx = _mm256_add_epi8(_mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0, 0, 0,
                                                         4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12),
                                        _mm256_set1_epi8(static_cast<char>(byte)));
    const __m256i bit = _mm256_set1_epi32(static_cast<int>(0x08040201u << shift));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, idx), bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
  }
  static void chunk(const uint8_t* g, int h, int i, __m256i& lo, __m256i& hi) {
    const __m256i v = load32(g + 96 + (i * 16 + 8 * h) * 4);
    const __m256i qh = load32(g + 32 + 32 * h);  // the half's 8 rows' qh, 4 bytes each, position order
    lo = _mm256_or_si256(nib_lo(v), fifth(qh, i / 2, 4 * (i % 2)));
    hi = _mm256_or_si256(nib_hi(v), fifth(qh, 2 + i / 2, 4 * (i % 2)));
  }
};
struct Q8_0Fmt {
  using Act = block_q8_0;
  static constexpr int kBytes = 544, kZero = 0;
  static constexpr bool kSigned = true, kMin = false;
  static void chunk(const uint8_t* g, int h, int i, __m256i& lo, __m256i& hi) {
    lo = load32(g + 32 + (i * 16 + 8 * h) * 4);
    hi = load32(g + 32 + ((i + 4) * 16 + 8 * h) * 4);
  }
};

template <class F, int C>
inline void legacy_cols(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* out, int64_t ldo) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[2][C];
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < C; ++j) acc[h][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += F::kBytes) {
    const typename F::Act* A[C];
    __m256i off[C];
    for (int j = 0; j < C; ++j) {
      A[j] = reinterpret_cast<const typename F::Act*>(a + static_cast<size_t>(j) * as) + b;
      if constexpr (F::kZero != 0)
        off[j] = _mm256_mullo_epi32(sum_all(load32(reinterpret_cast<const uint8_t*>(A[j]->qs))),
                                    _mm256_set1_epi32(F::kZero));
    }
#pragma GCC unroll 1
    for (int h = 0; h < 2; ++h) {
      __m256i s[C];
      for (int j = 0; j < C; ++j) s[j] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        __m256i lo, hi;
        F::chunk(g, h, i, lo, hi);
        if constexpr (F::kSigned) {
          const __m256i lu = _mm256_abs_epi8(lo), hu = _mm256_abs_epi8(hi);
          for (int j = 0; j < C; ++j) {
            const __m256i pl = _mm256_maddubs_epi16(lu, _mm256_sign_epi8(bcast4(A[j]->qs + 4 * i), lo));
            const __m256i ph = _mm256_maddubs_epi16(hu, _mm256_sign_epi8(bcast4(A[j]->qs + 16 + 4 * i), hi));
            s[j] = _mm256_add_epi32(s[j], _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones)));
          }
        } else {
          for (int j = 0; j < C; ++j) {
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(A[j]->qs + 4 * i)),
                                               _mm256_maddubs_epi16(hi, bcast4(A[j]->qs + 16 + 4 * i)));
            s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(p, ones));
          }
        }
      }
      const __m256 d = f16x8(g + 16 * h);
      for (int j = 0; j < C; ++j) {
        __m256i isum = s[j];
        if constexpr (F::kZero != 0) isum = _mm256_sub_epi32(isum, off[j]);
        acc[h][j] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_set1_ps(Ops::f16(A[j]->d))), acc[h][j]);
        if constexpr (F::kMin)
          acc[h][j] = _mm256_fmadd_ps(f16x8(g + 32 + 16 * h), _mm256_set1_ps(Ops::f16(A[j]->s)), acc[h][j]);
      }
    }
  }
  for (int j = 0; j < C; ++j) store_rows(out + j * ldo, acc[0][j], acc[1][j]);
}

}  // namespace x16

// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/simd/gemv_x16_table.h"
// clang-format on

namespace x16 {
template <int C>
struct Q4_0Cols {
  static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
    q4_0_cols<C>(nb, g, a, as, o, ldo);
  }
};
template <int C>
struct Q4_KCols {
  static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
    q4_K_cols<C>(nb, g, a, as, o, ldo);
  }
};
template <int C>
struct Q6_KCols {
  static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
    q6_K_cols<C>(nb, g, a, as, o, ldo);
  }
};
template <class F>
struct LegacyCols {
  template <int C>
  struct Of {
    static void run(int64_t nb, const uint8_t* g, const uint8_t* a, size_t as, float* o, int64_t ldo) {
      legacy_cols<F, C>(nb, g, a, as, o, ldo);
    }
  };
};
// kernel_table.h's GemvX16Fn through the 16 x 1 tile.
template <class F>
void legacy_groups(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a, float* out) {
  for (int64_t i = 0; i < n_groups; ++i)
    legacy_cols<F, 1>(k / 32, w + static_cast<size_t>(i) * group_bytes, a, 0, out + 16 * i, 0);
}
}  // namespace x16

// q4_1, q5_0, q8_0 on the 32-byte path (AVX2; the AVX-512 path has its VNNI kernels for them).
constexpr KernelTable with_x16_legacy(KernelTable t) {
  t.set_gemv_x16(GgmlType::Q4_1, x16::legacy_groups<x16::Q4_1Fmt>);
  t.set_gemv_x16(GgmlType::Q5_0, x16::legacy_groups<x16::Q5_0Fmt>);
  t.set_gemv_x16(GgmlType::Q8_0, x16::legacy_groups<x16::Q8_0Fmt>);
  t.set_gemm_x16(GgmlType::Q4_1, x16::group_cols<block_q8_1, 32, x16::LegacyCols<x16::Q4_1Fmt>::Of>);
  t.set_gemm_x16(GgmlType::Q5_0, x16::group_cols<block_q8_0, 32, x16::LegacyCols<x16::Q5_0Fmt>::Of>);
  t.set_gemm_x16(GgmlType::Q8_0, x16::group_cols<block_q8_0, 32, x16::LegacyCols<x16::Q8_0Fmt>::Of>);
  return t;
}

constexpr KernelTable with_x16_gemm(KernelTable t) {
  t.set_gemm_x16(GgmlType::Q4_0, x16::group_cols<block_q8_0, 32, x16::Q4_0Cols>);
  t.set_gemm_x16(GgmlType::Q4_K, x16::group_cols<block_q8_K, 256, x16::Q4_KCols>);
  t.set_gemm_x16(GgmlType::Q6_K, x16::group_cols<block_q8_K, 256, x16::Q6_KCols>);
  return t;
}
