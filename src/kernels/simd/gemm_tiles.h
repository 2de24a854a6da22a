// The GEMM driver, written once: a tile of R weight rows x C activation columns unpacks each weight block
// once and reuses it for C columns, and loads each activation block once for R rows. R and C are the
// path's kTileRows x kTileCols; edges run smaller tiles. Decode (one column) is the same code with C = 1.
//
// Included INSIDE each path's namespace after its Ops, block_dots.h and kv_rows.h (see ops_x86.h for why).
#pragma once

// The same tile in 2 x 2 steps, for paths and formats with a Paired<> kernel (block_dots.h); R, C even.
template <class Fmt, int R, int C>
void gemm_tile_paired(int64_t nb, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                      int64_t ldo) {
  using P = Paired<Fmt>;
  const typename Fmt::W* wr[R];
  const typename Fmt::A* ac[C];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const typename Fmt::W*>(w + static_cast<size_t>(r) * w_stride);
  for (int c = 0; c < C; ++c) ac[c] = reinterpret_cast<const typename Fmt::A*>(a + static_cast<size_t>(c) * a_stride);
  typename P::Acc acc[R / 2][C / 2];
#pragma GCC unroll 16
  for (int r = 0; r < R / 2; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C / 2; ++c) P::init(acc[r][c]);
  for (int64_t b = 0; b < nb; ++b) {
    typename Fmt::U u[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) u[r] = Fmt::unpack(wr[r][b]);
#pragma GCC unroll 16
    for (int c = 0; c < C / 2; ++c) {
      const typename Fmt::AV a0 = Fmt::act(ac[2 * c][b]), a1 = Fmt::act(ac[2 * c + 1][b]);
#pragma GCC unroll 16
      for (int r = 0; r < R / 2; ++r) P::accum(acc[r][c], u[2 * r], u[2 * r + 1], a0, a1);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R / 2; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C / 2; ++c) {
      float v[4];  // (row 2r, col 2c), (2r, 2c+1), (2r+1, 2c), (2r+1, 2c+1)
      P::finish(acc[r][c], v);
      out[2 * c * ldo + 2 * r] = v[0];
      out[(2 * c + 1) * ldo + 2 * r] = v[1];
      out[2 * c * ldo + 2 * r + 1] = v[2];
      out[(2 * c + 1) * ldo + 2 * r + 1] = v[3];
    }
}

template <class Fmt, int R, int C>
void gemm_tile(int64_t nb, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
               int64_t ldo) {
  if constexpr (Paired<Fmt>::kOn && R % 2 == 0 && C % 2 == 0) {
    gemm_tile_paired<Fmt, R, C>(nb, w, w_stride, a, a_stride, out, ldo);
    return;
  }
  const typename Fmt::W* wr[R];
  const typename Fmt::A* ac[C];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const typename Fmt::W*>(w + static_cast<size_t>(r) * w_stride);
  for (int c = 0; c < C; ++c) ac[c] = reinterpret_cast<const typename Fmt::A*>(a + static_cast<size_t>(c) * a_stride);
  typename Fmt::Acc acc[R][C];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) Fmt::init(acc[r][c]);
  for (int64_t b = 0; b < nb; ++b) {
    typename Fmt::U u[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) u[r] = Fmt::unpack(wr[r][b]);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const typename Fmt::AV av = Fmt::act(ac[c][b]);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) Fmt::accum(acc[r][c], u[r], av);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) out[c * ldo + r] = Fmt::finish(acc[r][c]);
}

// Columns [0, n_cols) for one band of R rows: full C-wide tiles, then one narrower tile for the rest.
template <class Fmt, int R, int C>
void gemm_band(int64_t nb, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, int64_t n_cols,
               float* out, int64_t ldo) {
  int64_t c = 0;
  for (; c + C <= n_cols; c += C)
    gemm_tile<Fmt, R, C>(nb, w, w_stride, a + static_cast<size_t>(c) * a_stride, a_stride, out + c * ldo, ldo);
  if constexpr (C > 1) {
    if (c < n_cols)
      gemm_band<Fmt, R, C - 1>(nb, w, w_stride, a + static_cast<size_t>(c) * a_stride, a_stride, n_cols - c,
                               out + c * ldo, ldo);
  }
}

// Rows in bands of R, the last band narrower.
template <class Fmt, int R, int C>
void gemm_rows(int64_t nb, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
               int64_t n_cols, float* out, int64_t ldo) {
  int64_t r = 0;
  for (; r + R <= n_rows; r += R)
    gemm_band<Fmt, R, C>(nb, w + static_cast<size_t>(r) * w_stride, w_stride, a, a_stride, n_cols, out + r, ldo);
  if constexpr (R > 1) {
    if (r < n_rows)
      gemm_rows<Fmt, R - 1, C>(nb, w + static_cast<size_t>(r) * w_stride, w_stride, n_rows - r, a, a_stride, n_cols,
                               out + r, ldo);
  }
}

// A table entry (kernel_table.h's GemmFn). Rows whose width is not a multiple of the format's block (only
// possible for f32/f16/bf16, whose GGUF block is one element) go to the scalar path.
template <class Fmt, GgmlType kType>
void gemm(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
          int64_t n_cols, float* out, int64_t ldo) {
  if (k % Fmt::kBlock != 0) {
    scalar_table()->find(kType)(k, w, w_stride, n_rows, a, a_stride, n_cols, out, ldo);
    return;
  }
  const int64_t nb = k / Fmt::kBlock;
  if (n_cols == 1) {
    gemm_rows<Fmt, kTileRows, 1>(nb, w, w_stride, n_rows, a, a_stride, 1, out, ldo);
  } else {
    gemm_rows<Fmt, kTileRows, kTileCols>(nb, w, w_stride, n_rows, a, a_stride, n_cols, out, ldo);
  }
}

// Weighted sum of rows (kernel_table.h's WeightedRowsFn): each row of V is loaded once for up to 4
// columns of weights; a column's output stays in registers across the rows.
template <class T, class Loader>
void weighted_rows(int64_t n_rows, int64_t dim, const uint8_t* v, size_t v_stride, const float* p, size_t p_stride,
                   int64_t n_cols, float* out, size_t out_stride) {
  constexpr int kCols = 4, kChunk = 64;  // columns per pass; output floats per column held in registers
  for (int64_t c0 = 0; c0 < n_cols; c0 += kCols) {
    const int nc = n_cols - c0 < kCols ? static_cast<int>(n_cols - c0) : kCols;
    for (int64_t i0 = 0; i0 < dim; i0 += kChunk) {
      const int nv = static_cast<int>((dim - i0 < kChunk ? dim - i0 : kChunk) / 8);
      typename Ops::F8 acc[kCols][kChunk / 8];
      for (int c = 0; c < nc; ++c)
        for (int q = 0; q < nv; ++q) acc[c][q] = Ops::load_f32(out + (c0 + c) * out_stride + i0 + 8 * q);
      for (int64_t j = 0; j < n_rows; ++j) {
        const T* row = reinterpret_cast<const T*>(v + static_cast<size_t>(j) * v_stride) + i0;
        typename Ops::F8 x[kChunk / 8];
        for (int q = 0; q < nv; ++q) x[q] = Loader::get(row + 8 * q);
        for (int c = 0; c < nc; ++c) {
          const float w = p[(c0 + c) * p_stride + j];
          if (w == 0.0f) continue;  // masked positions (and exact zeros) cost nothing
          const typename Ops::F8 wv = Ops::set_f(w);
          for (int q = 0; q < nv; ++q) acc[c][q] = Ops::fma(x[q], wv, acc[c][q]);
        }
      }
      for (int c = 0; c < nc; ++c)
        for (int q = 0; q < nv; ++q) Ops::store_f32(out + (c0 + c) * out_stride + i0 + 8 * q, acc[c][q]);
    }
  }
}

// The outlier branch's side product (kernel_table.h OutlierGemmFn): per output, 8 lanes of f16 weight x f32
// activation, summed across lanes, then the k % 8 tail in scalar order.
inline void outlier_gemm(int64_t k, const uint16_t* w, int64_t n_rows, const float* x, int64_t n_cols, float* out,
                         int64_t ldo) {
  const int64_t k8 = k - k % 8;
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint16_t* wr = w + r * k;
    for (int64_t c = 0; c < n_cols; ++c) {
      const float* xc = x + c * k;
      typename Ops::F8 acc = Ops::zero_f();
      for (int64_t j = 0; j < k8; j += 8) acc = Ops::fma(Ops::load_f16(wr + j), Ops::load_f32(xc + j), acc);
      float s = Ops::hsum(acc);
      for (int64_t j = k8; j < k; ++j) s += Ops::f16(wr[j]) * xc[j];
      out[c * ldo + r] += s;
    }
  }
}

// A format the path pairs in 2 x 2 tiles (block_dots.h's Paired<>) sums a paired column in another order than
// a lone one: its entry is marked batch-variant (kernel_table.h).
template <class Fmt, GgmlType kType>
constexpr void set_tiles(KernelTable& t) {
  if constexpr (Paired<Fmt>::kOn)
    t.set_batch_variant_gemm(kType, gemm<Fmt, kType>);
  else
    t.set_gemm(kType, gemm<Fmt, kType>);
}

// constexpr so a path's table can be constant-initialised: its *_table() then runs no code compiled with the
// path's ISA flags, and dispatch may call it on any CPU before checking the features.
constexpr KernelTable make_table(const char* name) {
  KernelTable t;
  t.name = name;
  set_tiles<FmtF32, GgmlType::F32>(t);
  set_tiles<FmtF16, GgmlType::F16>(t);
  set_tiles<FmtBF16, GgmlType::BF16>(t);
  set_tiles<FmtQ4_0, GgmlType::Q4_0>(t);
  set_tiles<FmtQ4_1, GgmlType::Q4_1>(t);
  set_tiles<FmtQ5_0, GgmlType::Q5_0>(t);
  set_tiles<FmtQ5_1, GgmlType::Q5_1>(t);
  set_tiles<FmtQ8_0, GgmlType::Q8_0>(t);
  set_tiles<FmtQ2_K, GgmlType::Q2_K>(t);
  set_tiles<FmtQ3_K, GgmlType::Q3_K>(t);
  set_tiles<FmtQ4_K, GgmlType::Q4_K>(t);
  set_tiles<FmtQ5_K, GgmlType::Q5_K>(t);
  set_tiles<FmtQ6_K, GgmlType::Q6_K>(t);
  set_tiles<FmtQ4_0G<QK4_0_G64>, GgmlType::Q4_0_G64>(t);
  set_tiles<FmtQ4_0G<QK4_0_G128>, GgmlType::Q4_0_G128>(t);
  t.scaled_softmax = scaled_softmax;  // simd/softmax.h
  t.weighted_rows_f32 = weighted_rows<float, LoadF32>;
  t.weighted_rows_f16 = weighted_rows<uint16_t, LoadF16>;
  t.set_quantize(GgmlType::Q8_0, quantize_q8_0);
  t.set_quantize(GgmlType::Q8_1, quantize_q8_1);
  t.set_quantize(GgmlType::Q8_K, quantize_q8_K);
  set_kv_rows(t);  // simd/kv_rows.h
  t.outlier_gemm = outlier_gemm;
  return t;
}
