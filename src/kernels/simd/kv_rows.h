// The quantized KV cache rows (formats/kv_types.h: q8 and q4, one f16 scale per token and KV head) on every
// SIMD path, written once over the path's Ops (x86/ops_x86.h, arm/ops_arm.h); the scalar oracle is
// ref/kv_rows.h.
//   K . Q (kernel_table.h GemmFn): K rows (q8 or q4) against queries quantized to q8 rows. The integer dots
//     are exact, and every path turns them into a score with the one formula of kernels/kv_score.h, so the
//     scores are bit-identical to the scalar reference. Tiles of kKvTileRows K rows x kKvTileCols queries:
//     a K chunk is loaded (q4: unpacked) once per tile and reused for its queries (a GQA group's heads).
//     q4 nibbles are dotted unsigned (0..15) and the offset comes off once per query: sum (n - 8) q =
//     sum n q - 8 sum q, still exact.
//   P . V (WeightedRowsFn): rows of V (q8 or q4) times probabilities; a row is widened to floats once for up
//     to 4 queries and its scale folds into each query's weight (one FMA per value and query).
//
// Included INSIDE each path's namespace after its Ops and kernels/kv_score.h (no #includes here).
#pragma once

// ---------------------------------------------------------------- K . Q
// A K row format: its data (after the scale) as 32-value chunks of integers to dot with 32 query quants.
struct KvKQ8 {
  static constexpr bool kBiased = false;  // dots need no per-query correction
  static Ops::I8 chunk(const uint8_t* data, int64_t b) { return Ops::load_i8(data + 32 * b); }
  // The query is dot_s8's first operand: on x86 its |q| (the unsigned side) is then shared by the tile's rows.
  static Ops::I32 dot(Ops::I32 acc, Ops::I8 k, Ops::I8 q) { return Ops::dot_s8(acc, q, k); }
};
struct KvKQ4 {
  static constexpr bool kBiased = true;  // nibbles are dotted unsigned: subtract 8 * sum(q) per query
  static Ops::I8 chunk(const uint8_t* data, int64_t b) { return Ops::nibbles_split16(data + 16 * b); }
  static Ops::I32 dot(Ops::I32 acc, Ops::I8 k, Ops::I8 q) { return Ops::dot_u8(acc, k, q); }
};

// One tile: R K rows x C queries. bias[c] = 8 * sum of query c's quants (q4 only). k % 32 values at the
// end (q8 only; q4 rows are whole 32-groups) are summed in scalar code, exactly.
template <class KF, int R, int C>
void kv_gemm_tile(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, const int32_t* bias,
                  float* out, int64_t ldo) {
  const uint8_t* kr[R];
  const uint8_t* qc[C];
  for (int r = 0; r < R; ++r) kr[r] = w + static_cast<size_t>(r) * w_stride;
  for (int c = 0; c < C; ++c) qc[c] = a + static_cast<size_t>(c) * a_stride;
  typename Ops::I32 acc[R * C];  // (row r, query c) at r * C + c
#pragma GCC unroll 16
  for (int i = 0; i < R * C; ++i) acc[i] = Ops::zero_i32();
  const int64_t nb = k / 32;
  for (int64_t b = 0; b < nb; ++b) {
    typename Ops::I8 kc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) kc[r] = KF::chunk(kr[r] + 2, b);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const typename Ops::I8 q = Ops::load_i8(qc[c] + 2 + 32 * b);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r * C + c] = KF::dot(acc[r * C + c], kc[r], q);
    }
  }
  // Integer totals, four accumulators per horizontal reduction, then the shared score formula.
  int32_t isum[R * C];
  constexpr int kQuads = R * C / 4;
#pragma GCC unroll 16
  for (int g = 0; g < kQuads; ++g)
    Ops::hsum4_i32(acc[4 * g], acc[4 * g + 1], acc[4 * g + 2], acc[4 * g + 3], isum + 4 * g);
#pragma GCC unroll 4
  for (int i = 4 * kQuads; i < R * C; ++i) isum[i] = Ops::hsum_i32(acc[i]);
  float dq[C];
  for (int c = 0; c < C; ++c) dq[c] = Ops::f16(kv_row_scale_bits(qc[c]));
  for (int r = 0; r < R; ++r) {
    const float dk = Ops::f16(kv_row_scale_bits(kr[r]));
    const int8_t* kt = reinterpret_cast<const int8_t*>(kr[r] + 2);  // int8_t reads: see ref/kv_rows.cpp
    for (int c = 0; c < C; ++c) {
      int32_t s = isum[r * C + c];
      const int8_t* qt = reinterpret_cast<const int8_t*>(qc[c] + 2);
      for (int64_t t = 32 * nb; t < k; ++t) s += kt[t] * qt[t];
      if constexpr (KF::kBiased) s -= bias[c];
      out[c * ldo + r] = kv_score(s, dk, dq[c]);
    }
  }
}

// Queries [0, n_cols) for one band of R rows: C-wide tiles, then one narrower tile for the rest.
template <class KF, int R, int C>
void kv_gemm_band(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, int64_t n_cols,
                  const int32_t* bias, float* out, int64_t ldo) {
  int64_t c = 0;
  for (; c + C <= n_cols; c += C)
    kv_gemm_tile<KF, R, C>(k, w, w_stride, a + static_cast<size_t>(c) * a_stride, a_stride, bias + c, out + c * ldo,
                           ldo);
  if constexpr (C > 1) {
    if (c < n_cols)
      kv_gemm_band<KF, R, C - 1>(k, w, w_stride, a + static_cast<size_t>(c) * a_stride, a_stride, n_cols - c, bias + c,
                                 out + c * ldo, ldo);
  }
}

// Rows in bands of R, the last band narrower.
template <class KF, int R, int C>
void kv_gemm_rows(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
                  int64_t n_cols, const int32_t* bias, float* out, int64_t ldo) {
  int64_t r = 0;
  for (; r + R <= n_rows; r += R)
    kv_gemm_band<KF, R, C>(k, w + static_cast<size_t>(r) * w_stride, w_stride, a, a_stride, n_cols, bias, out + r, ldo);
  if constexpr (R > 1) {
    if (r < n_rows)
      kv_gemm_rows<KF, R - 1, C>(k, w + static_cast<size_t>(r) * w_stride, w_stride, n_rows - r, a, a_stride, n_cols,
                                 bias, out + r, ldo);
  }
}

// The table entry (kernel_table.h kv_gemm[kRow]). Queries go in blocks of 64 (their q4 corrections on the
// stack); q4 rows that are not whole 32-groups (outside the format) go to the scalar reference.
template <class KF, KvRow kRow>
void kv_gemm(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
             int64_t n_cols, float* out, int64_t ldo) {
  if (KF::kBiased && k % 32 != 0) {
    scalar_table()->kv_gemm[kRow](k, w, w_stride, n_rows, a, a_stride, n_cols, out, ldo);
    return;
  }
  constexpr int64_t kBlock = 64;
  int32_t bias[kBlock] = {};
  for (int64_t c0 = 0; c0 < n_cols; c0 += kBlock) {
    const int64_t nc = n_cols - c0 < kBlock ? n_cols - c0 : kBlock;
    const uint8_t* ac = a + static_cast<size_t>(c0) * a_stride;
    if constexpr (KF::kBiased)
      for (int64_t c = 0; c < nc; ++c) {
        int32_t s = 0;
        for (int64_t b = 0; b < k / 32; ++b)
          s += Ops::sum_i8(Ops::load_i8(ac + static_cast<size_t>(c) * a_stride + 2 + 32 * b));
        bias[c] = 8 * s;
      }
    if (nc == 1)
      kv_gemm_rows<KF, kKvTileRows, 1>(k, w, w_stride, n_rows, ac, a_stride, 1, bias, out + c0 * ldo, ldo);
    else
      kv_gemm_rows<KF, kKvTileRows, kKvTileCols>(k, w, w_stride, n_rows, ac, a_stride, nc, bias, out + c0 * ldo, ldo);
  }
}

// ---------------------------------------------------------------- P . V
// A V row format: values [i0, i0 + 8 NV) of a row's data (after the scale) as NV vectors of 8 floats (the
// quants, unscaled). kUnit: the dim granularity; kVecs: the NV the driver uses (q4 widens whole 32-groups:
// 4 vectors).
struct KvVQ8 {
  static constexpr int kUnit = 8;  // dim granularity
  static constexpr int kVecs = kKvPvAccumulators / 4;
  template <int NV>
  static void load(const uint8_t* data, int64_t i0, typename Ops::F8* x) {
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) x[q] = Ops::load_i8_f(data + i0 + 8 * q);
  }
};
struct KvVQ4 {
  static constexpr int kUnit = 32;
  static constexpr int kVecs = 4;
  template <int NV>
  static void load(const uint8_t* data, int64_t i0, typename Ops::F8* x) {
    static_assert(NV % 4 == 0, "q4 rows widen whole 32-groups");
#pragma GCC unroll 16
    for (int g = 0; g < NV / 4; ++g) {
      const typename Ops::I8 v = Ops::sub8(Ops::nibbles_split16(data + (i0 / 32 + g) * 16), Ops::set_i8(8));
      x[4 * g] = Ops::i8_to_f<0>(v);
      x[4 * g + 1] = Ops::i8_to_f<1>(v);
      x[4 * g + 2] = Ops::i8_to_f<2>(v);
      x[4 * g + 3] = Ops::i8_to_f<3>(v);
    }
  }
};

// NC queries x 8 NV output values, held in registers across all rows: each row is widened once for the NC
// queries, its scale folded into each query's weight. Rows with p = 0 (masked) are skipped per query, as the
// reference does.
template <class VF, int NC, int NV>
void kv_weighted_block(int64_t n_rows, const uint8_t* v, size_t v_stride, const float* p, size_t p_stride, int64_t i0,
                       float* out, size_t out_stride) {
  typename Ops::F8 acc[NC][NV];
#pragma GCC unroll 16
  for (int c = 0; c < NC; ++c)
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) acc[c][q] = Ops::load_f32(out + c * out_stride + i0 + 8 * q);
  for (int64_t j = 0; j < n_rows; ++j) {
    const uint8_t* row = v + static_cast<size_t>(j) * v_stride;
    const float d = Ops::f16(kv_row_scale_bits(row));
    typename Ops::F8 x[NV];
    VF::template load<NV>(row + 2, i0, x);
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      const float pj = p[c * p_stride + j];
      if (pj == 0.0f) continue;
      const typename Ops::F8 wv = Ops::set_f(pj * d);
#pragma GCC unroll 16
      for (int q = 0; q < NV; ++q) acc[c][q] = Ops::fma(x[q], wv, acc[c][q]);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < NC; ++c)
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) Ops::store_f32(out + c * out_stride + i0 + 8 * q, acc[c][q]);
}

// NC queries over all dim values: blocks of VF::kVecs vectors, the rest (q8 only) one vector at a time.
template <class VF, int NC>
void kv_weighted_cols(int64_t n_rows, int64_t dim, const uint8_t* v, size_t v_stride, const float* p, size_t p_stride,
                      float* out, size_t out_stride) {
  constexpr int NV = VF::kVecs;
  int64_t i0 = 0;
  for (; i0 + 8 * NV <= dim; i0 += 8 * NV)
    kv_weighted_block<VF, NC, NV>(n_rows, v, v_stride, p, p_stride, i0, out, out_stride);
  if constexpr (VF::kUnit < 8 * NV) {  // q8: dim is a multiple of 8 only
    for (; i0 < dim; i0 += 8) kv_weighted_block<VF, NC, 1>(n_rows, v, v_stride, p, p_stride, i0, out, out_stride);
  }
}

// The table entry (kernel_table.h kv_weighted_rows[kRow]): queries in groups of kCols (the accumulators
// are kKvPvAccumulators vectors: kCols x kVecs), the last group narrower. A dim the format cannot take (q4:
// not whole 32-groups) goes to the scalar reference.
template <class VF, KvRow kRow>
void kv_weighted_rows(int64_t n_rows, int64_t dim, const uint8_t* v, size_t v_stride, const float* p, size_t p_stride,
                      int64_t n_cols, float* out, size_t out_stride) {
  if (dim % VF::kUnit != 0) {
    scalar_table()->kv_weighted_rows[kRow](n_rows, dim, v, v_stride, p, p_stride, n_cols, out, out_stride);
    return;
  }
  constexpr int kCols = kKvPvAccumulators / VF::kVecs < 4 ? kKvPvAccumulators / VF::kVecs : 4;
  static_assert(kCols >= 1, "at least one query per pass");
  for (int64_t c0 = 0; c0 < n_cols; c0 += kCols) {
    const int64_t nc = n_cols - c0 < kCols ? n_cols - c0 : kCols;
    const float* pc = p + c0 * p_stride;
    float* oc = out + c0 * out_stride;
    switch (nc) {
      case 1: kv_weighted_cols<VF, 1>(n_rows, dim, v, v_stride, pc, p_stride, oc, out_stride); break;
      case 2:
        if constexpr (kCols >= 2) kv_weighted_cols<VF, 2>(n_rows, dim, v, v_stride, pc, p_stride, oc, out_stride);
        break;
      case 3:
        if constexpr (kCols >= 3) kv_weighted_cols<VF, 3>(n_rows, dim, v, v_stride, pc, p_stride, oc, out_stride);
        break;
      default:
        if constexpr (kCols >= 4) kv_weighted_cols<VF, 4>(n_rows, dim, v, v_stride, pc, p_stride, oc, out_stride);
        break;
    }
  }
}

// Fills a path's table slots (called from make_table in gemm_tiles.h's constexpr context).
constexpr void set_kv_rows(KernelTable& t) {
  t.kv_gemm[kKvRowQ8] = kv_gemm<KvKQ8, kKvRowQ8>;
  t.kv_gemm[kKvRowQ4] = kv_gemm<KvKQ4, kKvRowQ4>;
  t.kv_weighted_rows[kKvRowQ8] = kv_weighted_rows<KvVQ8, kKvRowQ8>;
  t.kv_weighted_rows[kKvRowQ4] = kv_weighted_rows<KvVQ4, kKvRowQ4>;
}
