// Decode GEMVs (one activation column) on the AVX-512 path, in 64-byte registers, for q4_K and q6_K (a
// super-block row is 4 registers of quants, its sub-block scales spread over the 16-bit products with one
// permute per register, vpermw) and for q4_0, q4_1 and q8_0 (two blocks per register). The activation is
// loaded once per tile of 4 rows, and each row's stream is prefetched well ahead. They replace
// the generic tile (simd/gemm_tiles.h, 32-byte vectors) only where n_cols == 1; wider batches keep it, and
// prefill uses the packed GEMMs (simd/packed_gemm.h).
//
// Integer sums are exact; the float epilogue is one FMA per super-block (and one for q4_K's mins), so the
// results differ from the scalar reference only by float summation order, like every path's.
//
// Included INSIDE the avx512 namespace after gemm_tiles.h (it falls back to its gemm<>).
#pragma once

namespace gemv_detail {

inline __m512i nibbles_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
inline __m512i nibbles_hi(__m512i v) {
  return _mm512_and_si512(_mm512_maskz_srli_epi16(~0u, v, 4), _mm512_set1_epi8(0x0F));  // maskz: see Lanes
}
// Two 32-byte pieces as one register (lo, hi).
// (GCC 12's plain insert/broadcast/cast forms read an "undefined" register that -Werror=uninitialized
// rejects; the zext and masked forms below are the same instructions.)
inline __m512i zext(__m256i v) {
  const __m512i z = _mm512_setzero_si512();
  return _mm512_mask_inserti64x4(z, 0xFF, z, v, 0);
}
inline __m512i zext(__m128i v) {
  const __m512i z = _mm512_setzero_si512();
  return _mm512_mask_inserti32x4(z, 0xFFFF, z, v, 0);
}
inline __m512i halves(__m256i lo, __m256i hi) {
  const __m512i l = zext(lo);
  return _mm512_mask_inserti64x4(l, 0xFF, l, hi, 1);
}
inline __m512i load_2x32(const void* lo, const void* hi) {
  return halves(_mm256_loadu_si256(static_cast<const __m256i*>(lo)),
                _mm256_loadu_si256(static_cast<const __m256i*>(hi)));
}
inline __m512i broadcast_32(const void* p) {
  return _mm512_maskz_broadcast_i64x4(0xFF, _mm256_loadu_si256(static_cast<const __m256i*>(p)));
}
// An index vector for vpermw: result words 0..15 take source words a + i / per, words 16..31 take
// b + (i - 16) / per (each source word repeated `per` times).
inline __m512i word_index(int a, int b, int per) {
  alignas(64) int16_t idx[32];
  for (int i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>(i < 16 ? a + i / per : b + (i - 16) / per);
  return _mm512_load_si512(idx);
}
inline float hsum(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}
inline float hsum(__m512 v) {
  const __m128 z = _mm_setzero_ps();
  const __m128 a = _mm_add_ps(_mm512_mask_extractf32x4_ps(z, 0xF, v, 0), _mm512_mask_extractf32x4_ps(z, 0xF, v, 1));
  const __m128 b = _mm_add_ps(_mm512_mask_extractf32x4_ps(z, 0xF, v, 2), _mm512_mask_extractf32x4_ps(z, 0xF, v, 3));
  return hsum(_mm_add_ps(a, b));
}

// Software prefetch kPrefetchBytes ahead of each row's stream (the hardware prefetchers stop at every 4 KiB
// page, and a tile reads R rows at once). Measured on this project's VM, llama-1b decode at 2 threads:
// none 19.3 / 21.6 t/s (Q4_0 / Q4_K_M), 1 KiB ~22 / 25, 4 KiB 27.5 / 26.3, 16 KiB 31.3 / 30.0, 64 KiB
// 28.8 / 25.9. A prefetch never faults, so running past the tensor's end is harmless.
inline constexpr size_t kPrefetchBytes = 16384;
inline void prefetch_ahead(const void* blk, size_t size) {
  const char* p = static_cast<const char*>(blk) + kPrefetchBytes;
  for (size_t o = 0; o < size; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

// R rows of q4_K against one q8_K row. Register j pairs sub-blocks (0,2), (1,3), (4,6), (5,7): the low and
// high nibbles of 64 consecutive quant bytes.
template <int R>
void q4_K_rows(int64_t nb, const uint8_t* w, size_t ws, const block_q8_K* a, float* out) {
  const __m512i idx[4] = {word_index(0, 2, 16), word_index(1, 3, 16), word_index(4, 6, 16), word_index(5, 7, 16)};
  __m512 acc[R];
  __m128 accm[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm512_setzero_ps();
    accm[r] = _mm_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const block_q8_K& A = a[b];
    const __m512i av[4] = {load_2x32(A.qs, A.qs + 64), load_2x32(A.qs + 32, A.qs + 96),
                           load_2x32(A.qs + 128, A.qs + 192), load_2x32(A.qs + 160, A.qs + 224)};
    const __m128i bsums = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(A.bsums)),
                                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(A.bsums + 8)));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const block_q4_K& blk = reinterpret_cast<const block_q4_K*>(w + static_cast<size_t>(r) * ws)[b];
      prefetch_ahead(&blk, sizeof(blk));
      uint64_t sc8, mn8;
      scales_mins_6bit(blk.scales, sc8, mn8);  // block_dots.h
      const __m512i sc = zext(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc8))));
      const __m512i q01 = _mm512_loadu_si512(blk.qs), q23 = _mm512_loadu_si512(blk.qs + 64);
      const __m512i q[4] = {nibbles_lo(q01), nibbles_hi(q01), nibbles_lo(q23), nibbles_hi(q23)};
      __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[j], av[j]), _mm512_permutexvar_epi16(idx[j], sc));
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(Ops::f16(blk.d) * A.d), acc[r]);
      const __m128i mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mn8)));
      accm[r] =
          _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(mn, bsums)), _mm_set1_ps(-Ops::f16(blk.dmin) * A.d), accm[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) + hsum(accm[r]);
}

// R rows of q6_K against one q8_K row. Register c holds quants 64c..64c+63 (in order), as unsigned 6-bit
// values; the -32 offset is sum_g sc_g * 32 * bsum_g, taken off the integer sum.
template <int R>
void q6_K_rows(int64_t nb, const uint8_t* w, size_t ws, const block_q8_K* a, float* out) {
  const __m512i idx[4] = {word_index(0, 2, 8), word_index(4, 6, 8), word_index(8, 10, 8), word_index(12, 14, 8)};
  // Shifts that bring the 2 high bits of each quant to bits 4..5: register 2h takes qh << 4 (low half) and
  // qh << 2 (high half); register 2h + 1 takes qh (low) and qh >> 2 (high).
  const __m512i shl = halves(_mm256_set1_epi16(4), _mm256_set1_epi16(2));
  const __m512i shr = halves(_mm256_setzero_si256(), _mm256_set1_epi16(2));
  const __m512i m30 = _mm512_set1_epi8(0x30);
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const block_q8_K& A = a[b];
    const __m512i av[4] = {_mm512_loadu_si512(A.qs), _mm512_loadu_si512(A.qs + 64), _mm512_loadu_si512(A.qs + 128),
                           _mm512_loadu_si512(A.qs + 192)};
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A.bsums));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const block_q6_K& blk = reinterpret_cast<const block_q6_K*>(w + static_cast<size_t>(r) * ws)[b];
      prefetch_ahead(&blk, sizeof(blk));
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
      const __m512i sc = zext(sc16);
      __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m512i lo = _mm512_loadu_si512(blk.ql + 64 * h);
        const __m512i qh = broadcast_32(blk.qh + 32 * h);
        const __m512i q0 = _mm512_or_si512(nibbles_lo(lo), _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m30));
        const __m512i q1 = _mm512_or_si512(nibbles_hi(lo), _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m30));
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q0, av[2 * h]), _mm512_permutexvar_epi16(idx[2 * h], sc));
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q1, av[2 * h + 1]),
                                   _mm512_permutexvar_epi16(idx[2 * h + 1], sc));
      }
      const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5);
      isum = _mm512_sub_epi32(isum, zext(off));
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum), _mm512_set1_ps(Ops::f16(blk.d) * A.d), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// ---------------------------------------------------------------- 32-quant blocks, two per register
// Blocks b and b + 1 of a row fill one register in element order; their scales (and q4_1's mins / q8_1's
// sums) come as 4 floats (x_b, y_b, x_b1, y_b1), from which the per-lane scale vector is one permute. A
// weight format stores its quants as unsigned bytes u = q + kBias; the bias is taken off through the
// activation's per-lane sums, computed once per tile.
inline __m128 f16x4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
  const uint64_t v =
      a | static_cast<uint64_t>(b) << 16 | static_cast<uint64_t>(c) << 32 | static_cast<uint64_t>(d) << 48;
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(v)));
}
// 16 + 16 bytes of packed nibbles (blocks b, b + 1) -> 64 quants in element order (low nibbles first).
inline __m512i nibbles_2x16(const uint8_t* qs0, const uint8_t* qs1) {
  const __m512i x = _mm512_mask_broadcast_i32x4(
      _mm512_maskz_broadcast_i32x4(0x00FF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0))), 0xFF00,
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)));
  // 16-bit shift counts per 128-bit lane: 0 (low nibbles), 4 (high), 0, 4.
  const int h = 0x00040004;
  const __m512i shift = _mm512_set_epi32(h, h, h, h, 0, 0, 0, 0, h, h, h, h, 0, 0, 0, 0);
  return _mm512_and_si512(_mm512_srlv_epi16(x, shift), _mm512_set1_epi8(0x0F));
}

// (x, y) per block for N blocks (2 or 4) as floats (x_0, y_0, x_1, y_1, ...), the rest 0.
template <int N, class B, class X, class Y>
__m256 f16_pairs(const B* b, X x, Y y) {
  uint64_t v[2] = {0, 0};
  for (int i = 0; i < N; ++i)
    v[i / 2] |= (static_cast<uint64_t>(x(b[i])) | static_cast<uint64_t>(y(b[i])) << 16) << (32 * (i % 2));
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<long long>(v[1]), static_cast<long long>(v[0])));
}

struct G32Q4_0 {
  using W = block_q4_0;
  using A = block_q8_0;
  static constexpr int kBias = 8;
  static constexpr bool kMin = false;
  static __m512i quants(const W* b) { return nibbles_2x16(b[0].qs, b[1].qs); }
  template <int N>
  static __m256 scales(const W* b) {
    return f16_pairs<N>(
        b, [](const W& x) { return x.d; }, [](const W&) { return uint16_t{0}; });
  }
};
struct G32Q4_1 {
  using W = block_q4_1;
  using A = block_q8_1;
  static constexpr int kBias = 0;
  static constexpr bool kMin = true;  // m * s terms in the odd lanes of the scale product
  static __m512i quants(const W* b) { return nibbles_2x16(b[0].qs, b[1].qs); }
  template <int N>
  static __m256 scales(const W* b) {
    return f16_pairs<N>(
        b, [](const W& x) { return x.d; }, [](const W& x) { return x.m; });
  }
};
struct G32Q8_0 {
  using W = block_q8_0;
  using A = block_q8_0;
  static constexpr int kBias = 128;
  static constexpr bool kMin = false;
  static __m512i quants(const W* b) { return _mm512_xor_si512(load_2x32(b[0].qs, b[1].qs), _mm512_set1_epi8(-128)); }
  template <int N>
  static __m256 scales(const W* b) {
    return f16_pairs<N>(
        b, [](const W& x) { return x.d; }, [](const W&) { return uint16_t{0}; });
  }
};
template <int N>
__m256 act_scales(const block_q8_0* a) {
  return f16_pairs<N>(
      a, [](const block_q8_0& x) { return x.d; }, [](const block_q8_0&) { return uint16_t{0}; });
}
template <int N>
__m256 act_scales(const block_q8_1* a) {
  return f16_pairs<N>(
      a, [](const block_q8_1& x) { return x.d; }, [](const block_q8_1& x) { return x.s; });
}

// N blocks (2 or 4: one or two registers) of R rows from block b on.
template <class F, int R, int N>
inline void g32_step(int64_t b, const uint8_t* w, size_t ws, const typename F::A* a, __m512 (&acc)[R],
                     __m256 (&accm)[R]) {
  constexpr int kRegs = N / 2;
  // Lane l of register j takes product 2 (2 j + l / 8): the x-term of its block.
  const __m512i spread[2] = {_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
                             _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4)};
  __m512i av[kRegs], bias[kRegs];
  for (int j = 0; j < kRegs; ++j) {
    av[j] = load_2x32(a[b + 2 * j].qs, a[b + 2 * j + 1].qs);
    bias[j] = _mm512_setzero_si512();
    if constexpr (F::kBias != 0)
      bias[j] = _mm512_sub_epi32(
          bias[j], _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(F::kBias)), av[j]));
  }
  const __m256 as = act_scales<N>(a + b);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const typename F::W* blk = reinterpret_cast<const typename F::W*>(w + static_cast<size_t>(r) * ws) + b;
    prefetch_ahead(blk, N * sizeof(typename F::W));
    const __m256 prod = _mm256_mul_ps(F::template scales<N>(blk), as);  // (d_0 da_0, m_0 s_0, d_1 da_1, ...)
    const __m512 pw = _mm512_castps256_ps512(prod);
    for (int j = 0; j < kRegs; ++j) {
      const __m512i isum = _mm512_dpbusd_epi32(bias[j], F::quants(blk + 2 * j), av[j]);
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, isum),
                               _mm512_maskz_permutexvar_ps(0xFFFF, spread[j], pw), acc[r]);
    }
    accm[r] = _mm256_add_ps(accm[r], prod);
  }
}

template <class F, int R>
void g32_rows(int64_t nb, const uint8_t* w, size_t ws, const typename F::A* a, float* out) {
  __m512 acc[R];
  __m256 accm[R];  // odd lanes: the min terms (q4_1)
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm512_setzero_ps();
    accm[r] = _mm256_setzero_ps();
  }
  int64_t b = 0;
  for (; b + 3 < nb; b += 4) g32_step<F, R, 4>(b, w, ws, a, acc, accm);
  if (b + 1 < nb) g32_step<F, R, 2>(b, w, ws, a, acc, accm);
  for (int r = 0; r < R; ++r) {
    float m = 0.0f;
    if constexpr (F::kMin) {
      alignas(32) float v[8];
      _mm256_store_ps(v, accm[r]);
      m = (v[1] + v[3]) + (v[5] + v[7]);
    }
    out[r] = hsum(acc[r]) + m;
  }
}

template <class F>
struct G32Rows {
  template <int R>
  struct T {
    static void run(int64_t nb, const uint8_t* w, size_t ws, const typename F::A* a, float* out) {
      g32_rows<F, R>(nb, w, ws, a, out);
    }
  };
};

template <template <int> class Rows, class A, int R = 4>
void rows_in_tiles(int64_t nb, const uint8_t* w, size_t ws, int64_t n_rows, const A* a, float* out) {
  int64_t r = 0;
  for (; r + R <= n_rows; r += R) Rows<R>::run(nb, w + static_cast<size_t>(r) * ws, ws, a, out + r);
  if constexpr (R > 1) {
    if (r < n_rows) rows_in_tiles<Rows, A, R - 1>(nb, w + static_cast<size_t>(r) * ws, ws, n_rows - r, a, out + r);
  }
}
template <int R>
struct Q4KRows {
  static void run(int64_t nb, const uint8_t* w, size_t ws, const block_q8_K* a, float* out) {
    q4_K_rows<R>(nb, w, ws, a, out);
  }
};
template <int R>
struct Q6KRows {
  static void run(int64_t nb, const uint8_t* w, size_t ws, const block_q8_K* a, float* out) {
    q6_K_rows<R>(nb, w, ws, a, out);
  }
};

// A table entry: the GEMV for one column, the generic tiles otherwise (and for an odd number of 32-blocks).
template <class Fmt, GgmlType kType, template <int> class Rows>
void gemm_or_gemv(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
                  int64_t n_cols, float* out, int64_t ldo) {
  const int64_t nb = k / Fmt::kBlock;
  if (n_cols != 1 || (Fmt::kBlock == 32 && nb % 2 != 0)) {
    gemm<Fmt, kType>(k, w, w_stride, n_rows, a, a_stride, n_cols, out, ldo);
    return;
  }
  rows_in_tiles<Rows>(nb, w, w_stride, n_rows, reinterpret_cast<const typename Fmt::A*>(a), out);
}

}  // namespace gemv_detail

constexpr KernelTable with_wide_gemv(KernelTable t) {
  t.set_batch_variant_gemm(GgmlType::Q4_K, gemv_detail::gemm_or_gemv<FmtQ4_K, GgmlType::Q4_K, gemv_detail::Q4KRows>);
  t.set_batch_variant_gemm(GgmlType::Q6_K, gemv_detail::gemm_or_gemv<FmtQ6_K, GgmlType::Q6_K, gemv_detail::Q6KRows>);
  t.set_batch_variant_gemm(
      GgmlType::Q4_0,
      gemv_detail::gemm_or_gemv<FmtQ4_0, GgmlType::Q4_0, gemv_detail::G32Rows<gemv_detail::G32Q4_0>::T>);
  t.set_batch_variant_gemm(
      GgmlType::Q4_1,
      gemv_detail::gemm_or_gemv<FmtQ4_1, GgmlType::Q4_1, gemv_detail::G32Rows<gemv_detail::G32Q4_1>::T>);
  t.set_batch_variant_gemm(
      GgmlType::Q8_0,
      gemv_detail::gemm_or_gemv<FmtQ8_0, GgmlType::Q8_0, gemv_detail::G32Rows<gemv_detail::G32Q8_0>::T>);
  return t;
}
