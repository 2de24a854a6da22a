#pragma once
// Weighted least-squares fits of one group of values onto an integer grid: the search behind every encoder.
// Internal to src/formats. Each fit minimises sum_i w[i] * (x[i] - value(L[i]))^2; the caller then stores
// the parameters in the format's precision and re-rounds every L[i] against the stored ones (for fixed
// parameters, rounding each value to its nearest grid point is optimal element by element).
#include <cstdint>
#include <cstring>

#include "formats/quant_search.h"

namespace pocketlm {

// Groups are at most 128 values (ggml's blocks and sub-blocks are 16 or 32; pocketlm's q4_0_g64 / q4_0_g128
// groups 64 and 128).

// Symmetric grid: x ~ d * L, L integer in [lo, hi] (lo < 0 < hi; e.g. Q4_0: [-8, 7]). Exact optimum of the
// weighted error with L = clamp(round(x / d)) over every d that maps the largest |x| between half the grid
// and 1.5x past its end (0.75-1.25x for grids of 16+ levels a side): a sweep over every point where some
// L[i] changes, for both signs of d (the grid is not symmetric), keeping the rounding whose least-squares d
// is best. Returns 0 when every x (or every weight) is 0.
double fit_symmetric(const float* x, const float* w, int n, int lo, int hi);
// The best d > 0 and the best d < 0 separately (0 when none), with their error reductions
// (sum w x^2 - error): a two-level format may store either sign.
struct SymmetricFits {
  double positive = 0, negative = 0;
  double positive_score = 0, negative_score = 0;
};
SymmetricFits fit_symmetric_both(const float* x, const float* w, int n, int lo, int hi);
// The same result type from a grid search (QuantSearch::fast; scale_search_fast.cpp): 16 candidate scales
// over the same window and two between the best and its neighbours, each scored in eight float lanes, then the
// best refitted by least squares and re-rounded while its score rises. Its error is at most the exact one's
// plus a small margin (tests/quant/fast_search_test.cpp states the bound).
// `light` (QuantSearch::nearest): a quarter of the candidates (Q6_K: half).
SymmetricFits fit_symmetric_both_fast(const float* x, const float* w, int n, int lo, int hi, bool light = false);
// The fast search for a single scale (fit_symmetric's use): on a grid with a longer side (Q4_0's -8..7) only
// the sign that puts the largest |x| on that side is searched (the exact sweep's winner in almost every
// group; tests/quant/fast_search_test.cpp bounds the difference).
double fit_symmetric_fast(const float* x, const float* w, int n, int lo, int hi);
// fit_symmetric_both or its fast version.
inline SymmetricFits fit_symmetric_both(const float* x, const float* w, int n, int lo, int hi, QuantSearch s) {
  return s == QuantSearch::exact ? fit_symmetric_both(x, w, n, lo, hi)
                                 : fit_symmetric_both_fast(x, w, n, lo, hi, s == QuantSearch::nearest);
}

// Affine grid: x ~ d * L + m, L integer in [0, nmax], d >= 0. When !allow_positive_min, m <= 0 (the k-quants
// store -m as an unsigned multiple of dmin). Candidate steps (range / (nmax + delta) for delta in [-1, 1] in
// steps of 0.05) each get a weighted two-parameter least-squares fit; the best is then refined by moving single
// quants (coordinate descent) and by alternating re-rounding and refitting while the error falls.
// QuantSearch::fast: every fourth candidate (delta in steps of 0.2) and one pass of the coordinate descent;
// QuantSearch::nearest: delta in steps of 0.5 and no coordinate descent.
struct AffineFit {
  double d = 0;
  double m = 0;
};
AffineFit fit_affine(const float* x, const float* w, int n, int nmax, bool allow_positive_min,
                     QuantSearch search = QuantSearch::exact);

// Non-uniform grid (IQ4_NL/IQ4_XS): x ~ d * levels[L], `levels` ascending with values on both sides of zero.
// The same exact sweep as fit_symmetric, over the points where the nearest level of some x / d changes.
SymmetricFits fit_levels(const float* x, const float* w, int n, const int8_t* levels, int n_levels);
// Its grid-search version (QuantSearch::fast), as fit_symmetric_both_fast.
SymmetricFits fit_levels_fast(const float* x, const float* w, int n, const int8_t* levels, int n_levels);
inline SymmetricFits fit_levels(const float* x, const float* w, int n, const int8_t* levels, int n_levels,
                                QuantSearch s) {
  return s == QuantSearch::exact ? fit_levels(x, w, n, levels, n_levels) : fit_levels_fast(x, w, n, levels, n_levels);
}
// Index of the level nearest to v (levels ascending).
inline int nearest_level(float v, const int8_t* levels, int n_levels) {
  int idx = 0;
  for (int k = 0; k + 1 < n_levels; ++k) idx += v > 0.5f * static_cast<float>(levels[k] + levels[k + 1]) ? 1 : 0;
  return idx;
}
// Weighted error of x against d * levels[nearest], in float as the decoders evaluate it.
double levels_error(const float* x, const float* w, int n, float d, const int8_t* levels, int n_levels);

// Weighted error of x against d * clamp(round(x / d), lo, hi) evaluated in float as the decoders do.
double symmetric_error(const float* x, const float* w, int n, float d, int lo, int hi);

// v clamped to [lo, hi] (integral bounds) and rounded to the nearest integer, halves to even: the same value as
// nearest_int_clamped, in float arithmetic that compilers vectorize (|v| after clamping < 2^22). Inputs are
// finite or +-Inf (never NaN: callers divide by non-zero scales).
inline float round_clamped(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (v + 12582912.0f) - 12582912.0f;
}

// Nearest integer, halves to even, for |v| < 2^22 (ggml's nearest_int; callers clamp first).
inline int nearest_int_clamped(float v, int lo, int hi) {
  if (!(v > static_cast<float>(lo))) return lo;  // also NaN
  if (v >= static_cast<float>(hi)) return hi;
  const float r = v + 12582912.0f;  // 1.5 * 2^23: the float's low mantissa bits hold the rounded integer
  uint32_t bits;
  std::memcpy(&bits, &r, sizeof(bits));
  return static_cast<int>(bits & 0x007FFFFFu) - 0x00400000;
}

}  // namespace pocketlm
