// The x86 vector operations the shared kernels (simd/block_dots.h, simd/gemm_tiles.h) are written in: a
// 32 x int8 block, 8 x int32 sums, 8 x float. Built twice, by avx2.cpp (AVX2+FMA+F16C) and avx512.cpp
// (adds AVX-512 VL/BW/VNNI: one-instruction int8 and int16 dot products, and 32 vector registers). Only
// what differs between the two is under #if.
//
// Included INSIDE each path's own namespace (after <immintrin.h>), so the two builds never share a symbol:
// this header has no #includes and uses no standard-library templates (an inline function compiled with
// AVX-512 flags must never be the copy the linker keeps for the baseline code).
#pragma once

struct Ops {
  using I8 = __m256i;   // 32 x int8 (or uint8 where a function says so)
  using I16 = __m256i;  // 16 x int16
  using I32 = __m256i;  // 8 x int32 partial sums: only their total means something
  using F8 = __m256;    // 8 x float partial sums

  // ---- bytes ----
  static I8 load_i8(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static I8 set_i8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  // 16 bytes -> 32 values: low nibbles are elements 0..15, high nibbles 16..31 (the 32-blocks' layout).
  static I8 nibbles_split16(const void* p) {
    const __m128i x = _mm_loadu_si128(static_cast<const __m128i*>(p));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), set_i8(0x0F));
  }
  // 32 bytes -> their low (or high) nibbles, in order (the k-quants' layout).
  static I8 nibbles_lo(I8 v) { return _mm256_and_si256(v, set_i8(0x0F)); }
  static I8 nibbles_hi(I8 v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), set_i8(0x0F)); }
  // Per byte: (v << K) & mask, (v >> K) & mask. The mask must clear the K bits a byte gets from its
  // neighbour (the shifts run on 16-bit lanes).
  template <int K>
  static I8 shl_mask(I8 v, int mask) {
    return _mm256_and_si256(_mm256_slli_epi16(v, K), set_i8(mask));
  }
  template <int K>
  static I8 shr_mask(I8 v, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, K), set_i8(mask));
  }
  static I8 and8(I8 a, I8 b) { return _mm256_and_si256(a, b); }
  static I8 or8(I8 a, I8 b) { return _mm256_or_si256(a, b); }
  static I8 sub8(I8 a, I8 b) { return _mm256_sub_epi8(a, b); }
  // Byte j = 0xFF where bit j of `bits` is set, else 0.
  static I8 bits_to_bytes(uint32_t bits) {
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(bits)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  }
  // Byte j = 0xFF where (v[j] & bit) != 0.
  static I8 test_bit(I8 v, int bit) {
    const __m256i b = set_i8(bit);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, b), b);
  }

  // ---- integer dot products (exact) ----
  static I32 zero_i32() { return _mm256_setzero_si256(); }
  static I16 load_i16(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  // Scales for one 32-block: elements 0..15 get `lo`, 16..31 get `hi`.
  static I16 scales_i16(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(hi)), _mm_set1_epi16(static_cast<short>(lo)));
  }
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  static I32 madd_i16(I32 acc, I16 a, I16 b) { return _mm256_dpwssd_epi32(acc, a, b); }
  // acc += w . a over the 32 bytes; w unsigned (0..127), a signed.
  static I32 dot_u8(I32 acc, I8 w, I8 a) { return _mm256_dpbusd_epi32(acc, w, a); }
#else
  static I32 madd_i16(I32 acc, I16 a, I16 b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
  static I32 dot_u8(I32 acc, I8 w, I8 a) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1)));
  }
#endif
  // acc += w . a with both signed: |w| goes to the unsigned side, w's sign moves onto a.
  static I32 dot_s8(I32 acc, I8 w, I8 a) { return dot_u8(acc, _mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)); }
  // acc += sum over the two halves of (w . a) * scale (scales_i16). Pair sums stay within int16 for every
  // format here (|w| <= 32 or w unsigned <= 31 against |a| <= 127).
  static I32 dot_u8_scaled(I32 acc, I8 w, I8 a, I16 scales) {
    return madd_i16(acc, _mm256_maddubs_epi16(w, a), scales);
  }
  static I32 dot_s8_scaled(I32 acc, I8 w, I8 a, I16 scales) {
    return dot_u8_scaled(acc, _mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w), scales);
  }

  // Sum of the 8 int32 lanes.
  static int hsum_i32(I32 v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
  }
  // The sums of four I32s, out[0..3] (one reduction tree for the four).
  static void hsum4_i32(I32 a, I32 b, I32 c, I32 d, int32_t* out) {
    const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                     _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1)));
  }

  // ---- float ----
  static F8 zero_f() { return _mm256_setzero_ps(); }
  static F8 set_f(float v) { return _mm256_set1_ps(v); }
  static float first_f(F8 v) { return _mm256_cvtss_f32(v); }                    // lane 0
  static F8 lane0_f(float v) { return _mm256_zextps128_ps256(_mm_set_ss(v)); }  // (v, 0, ..., 0)
  static F8 to_f(I32 v) { return _mm256_cvtepi32_ps(v); }
  static F8 fma(F8 a, F8 b, F8 acc) { return _mm256_fmadd_ps(a, b, acc); }  // acc + a * b
  static F8 mul_f(F8 a, F8 b) { return _mm256_mul_ps(a, b); }
  static F8 load_f32(const float* p) { return _mm256_loadu_ps(p); }
  static void store_f32(float* p, F8 v) { _mm256_storeu_ps(p, v); }
  static F8 load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F8 load_bf16(const uint16_t* p) {
    const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  }
  // 8 int8 at p as floats (quantized KV rows).
  static F8 load_i8_f(const void* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(static_cast<const __m128i*>(p))));
  }
  // Bytes 8K .. 8K + 7 of v as floats.
  template <int K>
  static F8 i8_to_f(I8 v) {
    const __m128i half = K < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(K % 2 ? _mm_unpackhi_epi64(half, half) : half));
  }
  static float hsum(F8 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float f16(uint16_t h) { return _cvtsh_ss(h); }
  static uint16_t to_f16(float v) { return static_cast<uint16_t>(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }

  // ---- activation quantization (bit-exact with the scalar quantizers) ----
  static F8 abs_f(F8 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
  static F8 max_f(F8 a, F8 b) { return _mm256_max_ps(a, b); }
  static float hmax(F8 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  // C's roundf (halves away from zero) and rint (halves to even), per lane.
  static F8 round_away(F8 v) {
    const F8 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const F8 frac = abs_f(_mm256_sub_ps(v, t));
    const F8 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                  _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f)));
    return _mm256_add_ps(t, step);
  }
  static F8 round_even(F8 v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // Four vectors of integral floats -> 32 int8, saturating (also +-inf), in order.
  static __m256i to_i32_sat(F8 v) {
    return _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f)));
  }
  static I8 pack_i8(F8 a, F8 b, F8 c, F8 d) {
    const __m256i ab = _mm256_packs_epi32(to_i32_sat(a), to_i32_sat(b));
    const __m256i cd = _mm256_packs_epi32(to_i32_sat(c), to_i32_sat(d));
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  }
  static void store_i8(void* p, I8 v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  static F8 add_f(F8 a, F8 b) { return _mm256_add_ps(a, b); }
  static F8 sub_f(F8 a, F8 b) { return _mm256_sub_ps(a, b); }
  // 2^n for lanes holding integral values n in [-126, 127] (the exponent field built directly).
  static F8 exp2_int_f(F8 n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  // Each lane rounded to the nearest f16 value (ties to even) and back.
  static F8 round_f16_f(F8 v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
  // Sum of the 32 int8 values.
  static int sum_i8(I8 v) {
    const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), v);
    const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
  }
};

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
// 16 x int32 / 16 x float lanes, one per activation column of a packed group (simd/packed_gemm.h).
struct Lanes {
  using VI = __m512i;
  using VF = __m512;
  static VI zero_i() { return _mm512_setzero_si512(); }
  static VF zero_f() { return _mm512_setzero_ps(); }
  static VI load_i(const void* p) { return _mm512_loadu_si512(p); }
  static VF load_f(const float* p) { return _mm512_loadu_ps(p); }
  static void store_f(float* p, VF v) { _mm512_storeu_ps(p, v); }
  // Lane c += sum_i w4[i] * a[c][i]: the 4 bytes at w4 (unsigned, broadcast) against column c's 4 quants.
  static VI dot4(VI acc, const uint8_t* w4, VI a) {
    int32_t v;
    __builtin_memcpy(&v, w4, 4);
    return _mm512_dpbusd_epi32(acc, _mm512_set1_epi32(v), a);
  }
  // Lane c += m2[0] * b[c][0] + m2[1] * b[c][1] (int16 pairs).
  static VI madd2(VI acc, const int16_t* m2, VI b) {
    int32_t v;
    __builtin_memcpy(&v, m2, 4);
    return _mm512_dpwssd_epi32(acc, _mm512_set1_epi32(v), b);
  }
  static VI add_i(VI a, VI b) { return _mm512_add_epi32(a, b); }
  static VI mul_i(VI a, int32_t s) { return _mm512_mullo_epi32(a, _mm512_set1_epi32(s)); }
  // The maskz forms: GCC 12's unmasked ones read an "undefined" source that -Wmaybe-uninitialized flags.
  static VI neg_shl3(VI a) { return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_maskz_slli_epi32(0xFFFF, a, 3)); }
  static VF to_f(VI v) { return _mm512_maskz_cvtepi32_ps(0xFFFF, v); }
  static VF mul_f(VF a, float s) { return _mm512_mul_ps(a, _mm512_set1_ps(s)); }
  static VF fma(VF a, VF b, VF acc) { return _mm512_fmadd_ps(a, b, acc); }
};
inline constexpr int kPackedRows = 4;  // weight rows per packed tile
#endif

// Registers the tile shapes are sized for: (rows, activation columns) per GEMM tile.
#if defined(__AVX512F__)
inline constexpr int kTileRows = 4, kTileCols = 4;  // 32 vector registers
#else
inline constexpr int kTileRows = 4, kTileCols = 2;  // 16 vector registers
#endif
// The quantized-KV K . Q tiles (simd/kv_rows.h): K rows x queries.
// (AVX2 2 x 4 measured the same as 4 x 2 for a GQA group of 4: q8 +4 %, q4 -3 %.)
inline constexpr int kKvTileRows = kTileRows, kKvTileCols = kTileCols;
// The quantized-KV P . V accumulators (simd/kv_rows.h): queries x 8-float vectors held across the rows.
#if defined(__AVX512F__)
inline constexpr int kKvPvAccumulators = 16;
#else
inline constexpr int kKvPvAccumulators = 8;
#endif
