// GEMMs over column-interleaved activations (kernels/packed_acts.h), for prefill: a tile of R weight rows x
// the 16 columns of one packed group. Per 4 weight quants, one broadcast of the 4 weight bytes and one int8
// dot-product instruction serve 16 columns (Lanes::dot4), so each output lane is an exact integer dot and
// the float work (convert, scale, accumulate) is done once per block for 16 outputs. Weights are read in
// their GGUF layout: a call unpacks its band of rows once into unsigned bytes (a per-thread buffer, a few
// hundred KiB at most), which every column group then reads.
//
// Integer sums are exact, so results differ from the scalar reference only by float summation order:
//   q4_0:  sum_b d_w d_a (sum_i u_i a_i - 8 sum_i a_i), u = the nibble (0..15);
//   k-quants: d_w d_a sum_g sc_g (sum_{i in g} u_i a_i) - f_w d_a sum_p m_p . bsums_p, where u are the
//   unsigned quants and (m, f) the type's min terms (q4_K: the mins and dmin; q6_K: 32 sc and d, the
//   offset of its signed quants).
//
// Written over a path's Lanes (16 x int32 / float) and Ops (the 32-byte helpers of block_dots.h); included
// INSIDE the path's namespace after them. Only a path whose ops header defines Lanes and kPackedRows
// includes it (today x86/avx512.cpp; AVX2 and the ARM paths run the shared tiles for every batch).
#pragma once

template <int R>
void packed_store(const typename Lanes::VF (&acc)[R], float* out, int64_t ldo, int n_valid) {
  alignas(64) float v[kPackCols];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    Lanes::store_f(v, acc[r]);
    for (int c = 0; c < n_valid; ++c) out[c * ldo + r] = v[c];
  }
}

// Per-thread scratch for a band's unpacked rows (grown as needed, freed when the thread ends).
struct UnpackBuffer {
  void* p = nullptr;
  size_t bytes = 0;
  UnpackBuffer() = default;
  UnpackBuffer(const UnpackBuffer&) = delete;
  UnpackBuffer& operator=(const UnpackBuffer&) = delete;
  ~UnpackBuffer() { ::operator delete(p, std::align_val_t(64)); }
  template <class T>
  T* get(size_t n) {
    if (n * sizeof(T) > bytes) {
      ::operator delete(p, std::align_val_t(64));
      bytes = n * sizeof(T);
      p = ::operator new(bytes, std::align_val_t(64));
    }
    return static_cast<T*>(p);
  }
};
inline UnpackBuffer& unpack_buffer() {
  thread_local UnpackBuffer buf;
  return buf;
}

// ---------------------------------------------------------------- q4_0 x packed q8_0
struct URowQ4_0 {
  uint8_t q[32];  // nibbles u = q + 8, in element order
  float d;
};
inline void unpack_q4_0(const block_q4_0& b, URowQ4_0& u) {
  Ops::store_i8(u.q, Ops::nibbles_split16(b.qs));
  u.d = Ops::f16(b.d);
}

// R unpacked rows (row r at u + r * nb) x one packed group.
template <int R>
void packed_tile_q4_0(int64_t nb, const URowQ4_0* u, const PackedQ8_0* a, float* out, int64_t ldo, int n_valid) {
  typename Lanes::VF acc[R];
  for (int r = 0; r < R; ++r) acc[r] = Lanes::zero_f();
  for (int64_t b = 0; b < nb; ++b) {
    const typename Lanes::VI bias = Lanes::neg_shl3(Lanes::load_i(a[b].sum));  // -8 sum(a): u = q + 8
    typename Lanes::VI isum[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) isum[r] = bias;
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const typename Lanes::VI av = Lanes::load_i(a[b].qs[j]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) isum[r] = Lanes::dot4(isum[r], u[r * nb + b].q + 4 * j, av);
    }
    const typename Lanes::VF da = Lanes::load_f(a[b].d);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = Lanes::fma(Lanes::to_f(isum[r]), Lanes::mul_f(da, u[r * nb + b].d), acc[r]);
  }
  packed_store<R>(acc, out, ldo, n_valid);
}

// ---------------------------------------------------------------- k-quants x packed q8_K
// A super-block unpacked: unsigned quants, an integer scale per group of kGroup quants, the min terms per
// pair of 16-quant groups (m[p] pairs with bsums 2p and 2p+1), and the float factors.
template <int kGroup>
struct KRow {
  alignas(32) uint8_t q[256];
  int32_t sc[256 / kGroup];
  int16_t m[8][2];
  float d, f;  // main factor d, min factor -f
};

struct PackQ4_K {
  using W = block_q4_K;
  static constexpr int kGroup = 32;
  static void unpack(const W& b, KRow<32>& u) {
    for (int p = 0; p < 4; ++p) {
      const Ops::I8 bytes = Ops::load_i8(b.qs + 32 * p);
      Ops::store_i8(u.q + 64 * p, Ops::nibbles_lo(bytes));
      Ops::store_i8(u.q + 64 * p + 32, Ops::nibbles_hi(bytes));
    }
    uint64_t sc = 0, mn = 0;
    scales_mins_6bit(b.scales, sc, mn);
    for (int j = 0; j < 8; ++j) {
      u.sc[j] = byte_of(sc, j);
      u.m[j][0] = u.m[j][1] = static_cast<int16_t>(byte_of(mn, j));
    }
    u.d = Ops::f16(b.d);
    u.f = Ops::f16(b.dmin);
  }
};

struct PackQ6_K {
  using W = block_q6_K;
  static constexpr int kGroup = 16;
  static void unpack(const W& b, KRow<16>& u) {
    for (int h = 0; h < 2; ++h) {
      Ops::I8 q[4];
      q6_K_unsigned(b, h, q);
      for (int k = 0; k < 4; ++k) Ops::store_i8(u.q + 128 * h + 32 * k, q[k]);
    }
    for (int g = 0; g < 16; ++g) u.sc[g] = b.scales[g];
    for (int p = 0; p < 8; ++p) {
      u.m[p][0] = static_cast<int16_t>(32 * b.scales[2 * p]);
      u.m[p][1] = static_cast<int16_t>(32 * b.scales[2 * p + 1]);
    }
    u.d = Ops::f16(b.d);
    u.f = u.d;
  }
};

template <int G, int R>
void packed_tile_k(int64_t nb, const KRow<G>* u, const PackedQ8_K* a, float* out, int64_t ldo, int n_valid) {
  constexpr int kSteps = G / 4;
  typename Lanes::VF acc[R];
  for (int r = 0; r < R; ++r) acc[r] = Lanes::zero_f();
  for (int64_t b = 0; b < nb; ++b) {
    const KRow<G>* ub[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) ub[r] = u + r * nb + b;
    typename Lanes::VI tot[R], msum[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) tot[r] = msum[r] = Lanes::zero_i();
    for (int g = 0; g < 256 / G; ++g) {
      typename Lanes::VI part[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) part[r] = Lanes::zero_i();
#pragma GCC unroll 8
      for (int s = 0; s < kSteps; ++s) {
        const typename Lanes::VI av = Lanes::load_i(a[b].qs[g * kSteps + s]);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) part[r] = Lanes::dot4(part[r], ub[r]->q + g * G + 4 * s, av);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) tot[r] = Lanes::add_i(tot[r], Lanes::mul_i(part[r], ub[r]->sc[g]));
    }
#pragma GCC unroll 8
    for (int p = 0; p < 8; ++p) {
      const typename Lanes::VI bs = Lanes::load_i(a[b].bsums[p]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) msum[r] = Lanes::madd2(msum[r], ub[r]->m[p], bs);
    }
    const typename Lanes::VF da = Lanes::load_f(a[b].d);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      acc[r] = Lanes::fma(Lanes::to_f(tot[r]), Lanes::mul_f(da, ub[r]->d), acc[r]);
      acc[r] = Lanes::fma(Lanes::to_f(msum[r]), Lanes::mul_f(da, -ub[r]->f), acc[r]);
    }
  }
  packed_store<R>(acc, out, ldo, n_valid);
}

// ---------------------------------------------------------------- drivers
template <int R>
struct TileQ4_0 {
  using U = URowQ4_0;
  using A = PackedQ8_0;
  static void run(int64_t nb, const U* u, const A* a, float* out, int64_t ldo, int n) {
    packed_tile_q4_0<R>(nb, u, a, out, ldo, n);
  }
};
template <int G>
struct TileK {
  template <int R>
  struct T {
    using U = KRow<G>;
    using A = PackedQ8_K;
    static void run(int64_t nb, const U* u, const A* a, float* out, int64_t ldo, int n) {
      packed_tile_k<G, R>(nb, u, a, out, ldo, n);
    }
  };
};

// Unpacked rows in tiles of kPackedRows (the last narrower) x one packed group.
template <template <int> class TileOf, int R = kPackedRows>
void packed_rows(int64_t nb, const typename TileOf<1>::U* u, int64_t n_rows, const typename TileOf<1>::A* a, float* out,
                 int64_t ldo, int n_valid) {
  int64_t r = 0;
  for (; r + R <= n_rows; r += R) TileOf<R>::run(nb, u + r * nb, a, out + r, ldo, n_valid);
  if constexpr (R > 1) {
    if (r < n_rows) packed_rows<TileOf, R - 1>(nb, u + r * nb, n_rows - r, a, out + r, ldo, n_valid);
  }
}

// The band's rows unpacked once, then every packed group (kernel_table.h's GemmFn, with `a` packed:
// a_stride = packed_group_bytes).
template <template <int> class TileOf, class WBlock, int kBlock, void (*Unpack)(const WBlock&, typename TileOf<1>::U&)>
void packed_gemm(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
                 int64_t n_cols, float* out, int64_t ldo) {
  using U = typename TileOf<1>::U;
  const int64_t nb = k / kBlock;
  U* u = unpack_buffer().get<U>(static_cast<size_t>(n_rows * nb));
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* row = reinterpret_cast<const WBlock*>(w + static_cast<size_t>(r) * w_stride);
    for (int64_t b = 0; b < nb; ++b) Unpack(row[b], u[r * nb + b]);
  }
  for (int64_t g = 0; g * kPackCols < n_cols; ++g) {
    const int n_valid = static_cast<int>(n_cols - g * kPackCols < kPackCols ? n_cols - g * kPackCols : kPackCols);
    packed_rows<TileOf>(nb, u, n_rows,
                        reinterpret_cast<const typename TileOf<1>::A*>(a + static_cast<size_t>(g) * a_stride),
                        out + g * kPackCols * ldo, ldo, n_valid);
  }
}

// Adds the packed GEMMs to a path's table (constexpr, like make_table).
constexpr KernelTable with_packed_gemms(KernelTable t) {
  t.set_packed_gemm(GgmlType::Q4_0, packed_gemm<TileQ4_0, block_q4_0, QK4_0, unpack_q4_0>);
  t.set_packed_gemm(GgmlType::Q4_K, packed_gemm<TileK<32>::template T, block_q4_K, QK_K, PackQ4_K::unpack>);
  t.set_packed_gemm(GgmlType::Q6_K, packed_gemm<TileK<16>::template T, block_q6_K, QK_K, PackQ6_K::unpack>);
  return t;
}
