// Every weight format's block dot, written once over an ISA's Ops (x86/ops_x86.h, arm/ops_arm.h): how a
// weight block unpacks into int8 vectors, how an activation block loads, and how one weight block times one
// activation block accumulates. gemm_tiles.h runs them over tiles of rows x activation columns.
//
// Included INSIDE each path's namespace, after that path's Ops, like ops_x86.h (no #includes here; the block
// structs come from formats/, included by the path's .cpp before its namespace opens).
//
// Integer sums are exact. Float accumulation keeps 8 partial sums per output and adds them at the end, so
// results differ from the scalar reference (ref/) only by float rounding order: see tests/kernels.
#pragma once

// ---------------------------------------------------------------- 32-element blocks (q8_0, q4_*, q5_*)
// A weight block unpacks to its 32 integer quants (signed for _0 types, unsigned for _1), its scale and,
// for _1 types, its min; an activation block to its 32 quants, scale and (q8_1) its scaled sum.
// Scales are kept broadcast in vectors, so a block pair costs one vector multiply and one FMA. The _1 types'
// min term m * s is a separate scalar sum (an FMA per block), added after the vector's horizontal sum: the
// order llama.cpp's x86 code uses, so results agree with it to the last bit where the inputs do.
struct Q32 {
  Ops::I8 q;
  Ops::F8 d;
  Ops::F8 m;  // weights: min broadcast; activations: scaled sum in lane 0
};
struct Acc32 {
  Ops::F8 v;
  float m;
};

// Quants::get(block) -> the 32 quants (a struct, not a function pointer: vector return types don't make
// portable template arguments).
template <class WBlock, class ABlock, bool kSigned, bool kHasMin, class Quants>
struct Fmt32 {
  using W = WBlock;
  using A = ABlock;
  using U = Q32;
  using AV = Q32;
  using Acc = Acc32;
  static constexpr int kBlock = 32;
  static U unpack(const W& b) {
    if constexpr (kHasMin)
      return {Quants::get(b), Ops::set_f(Ops::f16(b.d)), Ops::set_f(Ops::f16(b.m))};
    else
      return {Quants::get(b), Ops::set_f(Ops::f16(b.d)), Ops::zero_f()};
  }
  static AV act(const A& b) {
    if constexpr (kHasMin)
      return {Ops::load_i8(b.qs), Ops::set_f(Ops::f16(b.d)), Ops::lane0_f(Ops::f16(b.s))};
    else
      return {Ops::load_i8(b.qs), Ops::set_f(Ops::f16(b.d)), Ops::zero_f()};
  }
  static void init(Acc& acc) { acc = {Ops::zero_f(), 0.0f}; }
  static void accum(Acc& acc, const U& w, const AV& a) {
    const Ops::I32 isum = kSigned ? Ops::dot_s8(Ops::zero_i32(), w.q, a.q) : Ops::dot_u8(Ops::zero_i32(), w.q, a.q);
    acc.v = Ops::fma(Ops::to_f(isum), Ops::mul_f(w.d, a.d), acc.v);
    if constexpr (kHasMin) acc.m = __builtin_fmaf(Ops::first_f(w.m), Ops::first_f(a.m), acc.m);
  }
  static float finish(const Acc& acc) { return Ops::hsum(acc.v) + acc.m; }
};

inline Ops::I8 fifth_bits(const uint8_t qh[4]) {
  const uint32_t bits = static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
                        static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
  return Ops::and8(Ops::bits_to_bytes(bits), Ops::set_i8(0x10));
}
struct QuantsQ4_0 {
  // 16 bytes of Q4_0's packing -> its 32 signed quants (a q4_0 block, or one part of a q4_0_g64/g128 block).
  static Ops::I8 part(const uint8_t* qs) { return Ops::sub8(Ops::nibbles_split16(qs), Ops::set_i8(8)); }
  static Ops::I8 get(const block_q4_0& b) { return part(b.qs); }
};
struct QuantsQ4_1 {
  static Ops::I8 get(const block_q4_1& b) { return Ops::nibbles_split16(b.qs); }
};
struct QuantsQ5_0 {
  static Ops::I8 get(const block_q5_0& b) {
    return Ops::sub8(Ops::or8(Ops::nibbles_split16(b.qs), fifth_bits(b.qh)), Ops::set_i8(16));
  }
};
struct QuantsQ5_1 {
  static Ops::I8 get(const block_q5_1& b) { return Ops::or8(Ops::nibbles_split16(b.qs), fifth_bits(b.qh)); }
};
struct QuantsQ8_0 {
  static Ops::I8 get(const block_q8_0& b) { return Ops::load_i8(b.qs); }
};

using FmtQ4_0 = Fmt32<block_q4_0, block_q8_0, true, false, QuantsQ4_0>;
using FmtQ4_1 = Fmt32<block_q4_1, block_q8_1, false, true, QuantsQ4_1>;
using FmtQ5_0 = Fmt32<block_q5_0, block_q8_0, true, false, QuantsQ5_0>;
using FmtQ5_1 = Fmt32<block_q5_1, block_q8_1, false, true, QuantsQ5_1>;
using FmtQ8_0 = Fmt32<block_q8_0, block_q8_0, true, false, QuantsQ8_0>;

// pocketlm-only Q4_0 group sizes (G = 64, 128; formats/legacy.h): a block is G / 32 parts packed as
// q4_0 blocks that share one scale. Each part unpacks as a q4_0 block with the shared d and runs q4_0's own
// block dot (FmtQ4_0::accum) against its q8_0 activation block, so nothing here is new arithmetic.
template <int G>
struct FmtQ4_0G {
  static constexpr int kParts = G / 32;
  using W = block_q4_0_g<G>;
  struct A {
    block_q8_0 part[kParts];  // the kParts consecutive q8_0 blocks of the activation row
  };
  struct U {
    Q32 part[kParts];
  };
  using AV = U;
  using Acc = Acc32;
  static constexpr int kBlock = G;
  static U unpack(const W& b) {
    U u;
    const Ops::F8 d = Ops::set_f(Ops::f16(b.d));
    for (int p = 0; p < kParts; ++p) u.part[p] = {QuantsQ4_0::part(b.qs + 16 * p), d, Ops::zero_f()};
    return u;
  }
  static AV act(const A& a) {
    AV v;
    for (int p = 0; p < kParts; ++p) v.part[p] = FmtQ4_0::act(a.part[p]);
    return v;
  }
  static void init(Acc& acc) { FmtQ4_0::init(acc); }
  static void accum(Acc& acc, const U& w, const AV& a) {
    for (int p = 0; p < kParts; ++p) FmtQ4_0::accum(acc, w.part[p], a.part[p]);
  }
  static float finish(const Acc& acc) { return FmtQ4_0::finish(acc); }
};

// ---------------------------------------------------------------- 256-element super-blocks (k-quants)
// A super-block unpacks to 8 vectors of 32 quants with a pair of int16 scales each (one per 16 elements);
// types with mins also get the 16 mins, one per group of 16 activations, to dot with q8_K's bsums.
struct QK {
  Ops::I8 q[8];
  Ops::I16 sc[8];
  Ops::I16 mins;  // per 16 elements, for q8_K bsums (k-quants with a min)
  float d, dmin;
};
struct AccK {
  Ops::F8 v;
};

template <class WBlock, bool kSigned, bool kHasMin, void (*Unpack)(const WBlock&, QK&)>
struct FmtK {
  using W = WBlock;
  using A = block_q8_K;
  using U = QK;
  using AV = const block_q8_K*;
  using Acc = AccK;
  static constexpr int kBlock = 256;
  static U unpack(const W& b) {
    U u;
    Unpack(b, u);
    return u;
  }
  static AV act(const A& b) { return &b; }
  static void init(Acc& acc) { acc.v = Ops::zero_f(); }
  static void accum(Acc& acc, const U& w, AV a) {
    Ops::I32 isum = Ops::zero_i32();
    for (int j = 0; j < 8; ++j) {
      const Ops::I8 aq = Ops::load_i8(a->qs + 32 * j);
      isum = kSigned ? Ops::dot_s8_scaled(isum, w.q[j], aq, w.sc[j]) : Ops::dot_u8_scaled(isum, w.q[j], aq, w.sc[j]);
    }
    acc.v = Ops::fma(Ops::to_f(isum), Ops::set_f(w.d * a->d), acc.v);
    if constexpr (kHasMin) {
      const Ops::I32 msum = Ops::madd_i16(Ops::zero_i32(), Ops::load_i16(a->bsums), w.mins);
      acc.v = Ops::fma(Ops::to_f(msum), Ops::set_f(-(w.dmin * a->d)), acc.v);
    }
  }
  static float finish(const Acc& acc) { return Ops::hsum(acc.v); }
};

inline void unpack_q2_K(const block_q2_K& b, QK& u) {
  int16_t mins[16];
  for (int h = 0; h < 2; ++h) {
    const Ops::I8 bytes = Ops::load_i8(b.qs + 32 * h);
    u.q[4 * h + 0] = Ops::and8(bytes, Ops::set_i8(3));
    u.q[4 * h + 1] = Ops::shr_mask<2>(bytes, 3);
    u.q[4 * h + 2] = Ops::shr_mask<4>(bytes, 3);
    u.q[4 * h + 3] = Ops::shr_mask<6>(bytes, 3);
  }
  for (int j = 0; j < 8; ++j) u.sc[j] = Ops::scales_i16(b.scales[2 * j] & 0x0F, b.scales[2 * j + 1] & 0x0F);
  for (int j = 0; j < 16; ++j) mins[j] = static_cast<int16_t>(b.scales[j] >> 4);
  u.mins = Ops::load_i16(mins);
  u.d = Ops::f16(b.d);
  u.dmin = Ops::f16(b.dmin);
}

inline void unpack_q3_K(const block_q3_K& b, QK& u) {
  const Ops::I8 hmask = Ops::load_i8(b.hmask);
  for (int h = 0; h < 2; ++h) {
    const Ops::I8 bytes = Ops::load_i8(b.qs + 32 * h);
    const Ops::I8 low[4] = {Ops::and8(bytes, Ops::set_i8(3)), Ops::shr_mask<2>(bytes, 3), Ops::shr_mask<4>(bytes, 3),
                            Ops::shr_mask<6>(bytes, 3)};
    for (int s = 0; s < 4; ++s) {
      // value = low - 4 where the high bit is clear: subtract 4 & ~mask.
      const Ops::I8 set = Ops::test_bit(hmask, 1 << (4 * h + s));
      u.q[4 * h + s] = Ops::sub8(low[s], Ops::sub8(Ops::set_i8(4), Ops::and8(set, Ops::set_i8(4))));
    }
  }
  for (int j = 0; j < 8; ++j) {
    const int lo = 2 * j, hi = 2 * j + 1;
    auto scale = [&b](int i) {
      const int low = i < 8 ? (b.scales[i] & 0x0F) : (b.scales[i - 8] >> 4);
      const int high = (b.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
      return (low | (high << 4)) - 32;
    };
    u.sc[j] = Ops::scales_i16(scale(lo), scale(hi));
  }
  u.d = Ops::f16(b.d);
  u.dmin = 0.0f;
}

// Q4_K/Q5_K: the 6-bit scales and mins of the 8 sub-blocks (formats/kquants.h's k_scale_min), byte j
// of `sc` / `mn` for sub-block j; decoded four at a time in 32-bit words (little-endian byte order).
inline void scales_mins_6bit(const uint8_t* s, uint64_t& sc, uint64_t& mn) {
  uint32_t w0, w1, w2;
  __builtin_memcpy(&w0, s, 4);
  __builtin_memcpy(&w1, s + 4, 4);
  __builtin_memcpy(&w2, s + 8, 4);
  const uint32_t sc_lo = w0 & 0x3F3F3F3Fu, mn_lo = w1 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u);
  sc = sc_lo | static_cast<uint64_t>(sc_hi) << 32;
  mn = mn_lo | static_cast<uint64_t>(mn_hi) << 32;
}
inline int byte_of(uint64_t v, int j) { return static_cast<int>((v >> (8 * j)) & 0xFF); }

template <class Block>
inline void scales_mins_k(const Block& b, QK& u) {
  int16_t mins[16];
  uint64_t sc = 0, mn = 0;
  scales_mins_6bit(b.scales, sc, mn);
  for (int j = 0; j < 8; ++j) {
    u.sc[j] = Ops::scales_i16(byte_of(sc, j), byte_of(sc, j));
    mins[2 * j] = mins[2 * j + 1] = static_cast<int16_t>(byte_of(mn, j));
  }
  u.mins = Ops::load_i16(mins);
  u.d = Ops::f16(b.d);
  u.dmin = Ops::f16(b.dmin);
}

inline void unpack_q4_K(const block_q4_K& b, QK& u) {
  for (int p = 0; p < 4; ++p) {
    const Ops::I8 bytes = Ops::load_i8(b.qs + 32 * p);
    u.q[2 * p] = Ops::nibbles_lo(bytes);
    u.q[2 * p + 1] = Ops::nibbles_hi(bytes);
  }
  scales_mins_k(b, u);
}

inline void unpack_q5_K(const block_q5_K& b, QK& u) {
  const Ops::I8 qh = Ops::load_i8(b.qh);
  for (int p = 0; p < 4; ++p) {
    const Ops::I8 bytes = Ops::load_i8(b.qs + 32 * p);
    u.q[2 * p] = Ops::or8(Ops::nibbles_lo(bytes), Ops::and8(Ops::test_bit(qh, 1 << (2 * p)), Ops::set_i8(0x10)));
    u.q[2 * p + 1] =
        Ops::or8(Ops::nibbles_hi(bytes), Ops::and8(Ops::test_bit(qh, 1 << (2 * p + 1)), Ops::set_i8(0x10)));
  }
  scales_mins_k(b, u);
}

// Half h (128 quants) of a q6_K block as 4 vectors of its unsigned 6-bit quants (0..63; the value is q - 32).
inline void q6_K_unsigned(const block_q6_K& b, int h, Ops::I8 q[4]) {
  const Ops::I8 qh = Ops::load_i8(b.qh + 32 * h);
  const Ops::I8 la = Ops::load_i8(b.ql + 64 * h);
  const Ops::I8 lb = Ops::load_i8(b.ql + 64 * h + 32);
  q[0] = Ops::or8(Ops::nibbles_lo(la), Ops::shl_mask<4>(qh, 0x30));
  q[1] = Ops::or8(Ops::nibbles_lo(lb), Ops::shl_mask<2>(qh, 0x30));
  q[2] = Ops::or8(Ops::nibbles_hi(la), Ops::and8(qh, Ops::set_i8(0x30)));
  q[3] = Ops::or8(Ops::nibbles_hi(lb), Ops::shr_mask<2>(qh, 0x30));
}

inline void unpack_q6_K(const block_q6_K& b, QK& u) {
  for (int h = 0; h < 2; ++h) {
    Ops::I8 q[4];
    q6_K_unsigned(b, h, q);
    for (int k = 0; k < 4; ++k) u.q[4 * h + k] = Ops::sub8(q[k], Ops::set_i8(32));
  }
  for (int j = 0; j < 8; ++j) u.sc[j] = Ops::scales_i16(b.scales[2 * j], b.scales[2 * j + 1]);
  u.d = Ops::f16(b.d);
  u.dmin = 0.0f;
}

using FmtQ2_K = FmtK<block_q2_K, false, true, unpack_q2_K>;
using FmtQ3_K = FmtK<block_q3_K, true, false, unpack_q3_K>;
using FmtQ4_K = FmtK<block_q4_K, false, true, unpack_q4_K>;
using FmtQ5_K = FmtK<block_q5_K, false, true, unpack_q5_K>;
using FmtQ6_K = FmtK<block_q6_K, true, false, unpack_q6_K>;

// ---------------------------------------------------------------- float weights (f32, f16, bf16)
// Rows are taken 32 elements at a time; the activation row has the weight's own type (ggml's pairing).
struct F32x32 {
  Ops::F8 v[4];
};
template <class T, class Loader>
struct FmtFloat {
  struct W {
    T x[32];
  };
  using A = W;
  using U = F32x32;
  using AV = F32x32;
  using Acc = AccK;
  static constexpr int kBlock = 32;
  static U unpack(const W& b) {
    return {{Loader::get(b.x), Loader::get(b.x + 8), Loader::get(b.x + 16), Loader::get(b.x + 24)}};
  }
  static AV act(const A& b) { return unpack(b); }
  static void init(Acc& acc) { acc.v = Ops::zero_f(); }
  static void accum(Acc& acc, const U& w, const AV& a) {
    for (int i = 0; i < 4; ++i) acc.v = Ops::fma(w.v[i], a.v[i], acc.v);
  }
  static float finish(const Acc& acc) { return Ops::hsum(acc.v); }
};
struct LoadF32 {
  static Ops::F8 get(const float* p) { return Ops::load_f32(p); }
};
struct LoadF16 {
  static Ops::F8 get(const uint16_t* p) { return Ops::load_f16(p); }
};
struct LoadBF16 {
  static Ops::F8 get(const uint16_t* p) { return Ops::load_bf16(p); }
};
using FmtF32 = FmtFloat<float, LoadF32>;
using FmtF16 = FmtFloat<uint16_t, LoadF16>;
using FmtBF16 = FmtFloat<uint16_t, LoadBF16>;

// ---------------------------------------------------------------- optional 2 x 2 tiles
// A path whose Ops set kPairedTile (ARM i8mm: SMMLA multiplies a 2x8 by an 8x2 int8 matrix) computes two
// weight rows x two activation columns at once for the formats specialised here; gemm_tiles.h uses it for
// the even part of every tile and the per-output accum() above for the rest. Written over a template
// parameter O (= Ops), so on paths without kPairedTile its names are never looked up. Integer sums stay
// exact; only the float summation order changes (one float sum per output instead of 8 partial sums).
template <class O>
concept PairedOps = requires {
  requires O::kPairedTile;
};

template <class Fmt, class O = Ops>
struct Paired {
  static constexpr bool kOn = false;
};

template <class WBlock, class ABlock, bool kSigned, bool kHasMin, class Quants, class O>
requires PairedOps<O>
struct Paired<Fmt32<WBlock, ABlock, kSigned, kHasMin, Quants>, O> {
  static constexpr bool kOn = true;
  struct Acc {
    typename O::PF v, m;  // (w0.a0, w0.a1, w1.a0, w1.a1): scaled dots, and the mins' products (_1 types)
  };
  static void init(Acc& acc) { acc = {O::pair_zero_f(), O::pair_zero_f()}; }
  static void accum(Acc& acc, const Q32& w0, const Q32& w1, const Q32& a0, const Q32& a1) {
    const typename O::P32 isum = O::pair_dot(O::pair_zero_i32(), w0.q, w1.q, a0.q, a1.q);
    // Q32 keeps scales broadcast (lane 0 holds the value; an activation's m has its sum in lane 0 only).
    acc.v = O::pair_fma(O::pair_to_f(isum),
                        O::pair_outer(O::first_f(w0.d), O::first_f(w1.d), O::first_f(a0.d), O::first_f(a1.d)), acc.v);
    if constexpr (kHasMin)
      acc.m = O::pair_add(acc.m, O::pair_outer(O::first_f(w0.m), O::first_f(w1.m), O::first_f(a0.m), O::first_f(a1.m)));
  }
  static void finish(const Acc& acc, float out[4]) { O::pair_store(out, O::pair_add(acc.v, acc.m)); }
};

template <class WBlock, bool kSigned, bool kHasMin, void (*Unpack)(const WBlock&, QK&), class O>
requires PairedOps<O>
struct Paired<FmtK<WBlock, kSigned, kHasMin, Unpack>, O> {
  static constexpr bool kOn = true;
  struct Acc {
    typename O::PF v;
  };
  static void init(Acc& acc) { acc.v = O::pair_zero_f(); }
  static void accum(Acc& acc, const QK& w0, const QK& w1, const block_q8_K* a0, const block_q8_K* a1) {
    typename O::P32 isum = O::pair_zero_i32();
    for (int j = 0; j < 8; ++j)
      isum = O::pair_dot_scaled(isum, w0.q[j], w1.q[j], O::load_i8(a0->qs + 32 * j), O::load_i8(a1->qs + 32 * j),
                                w0.sc[j], w1.sc[j]);
    acc.v = O::pair_fma(O::pair_to_f(isum), O::pair_outer(w0.d, w1.d, a0->d, a1->d), acc.v);
    if constexpr (kHasMin) {
      const typename O::P32 msum = O::pair_madd_i16(w0.mins, w1.mins, O::load_i16(a0->bsums), O::load_i16(a1->bsums));
      acc.v = O::pair_fma(O::pair_to_f(msum), O::pair_outer(-w0.dmin, -w1.dmin, a0->d, a1->d), acc.v);
    }
  }
  static void finish(const Acc& acc, float out[4]) { O::pair_store(out, acc.v); }
};

// The Q4_0 group sizes pair part by part with q4_0's 2 x 2 kernel.
template <int G, class O>
requires PairedOps<O>
struct Paired<FmtQ4_0G<G>, O> {
  using Part = Paired<FmtQ4_0, O>;
  static constexpr bool kOn = true;
  using Acc = typename Part::Acc;
  using U = typename FmtQ4_0G<G>::U;
  static void init(Acc& acc) { Part::init(acc); }
  static void accum(Acc& acc, const U& w0, const U& w1, const U& a0, const U& a1) {
    for (int p = 0; p < FmtQ4_0G<G>::kParts; ++p) Part::accum(acc, w0.part[p], w1.part[p], a0.part[p], a1.part[p]);
  }
  static void finish(const Acc& acc, float out[4]) { Part::finish(acc, out); }
};
