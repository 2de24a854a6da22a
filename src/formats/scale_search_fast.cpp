// The grid searches of QuantSearch::fast (scale_search.h): candidate scales scored in eight float lanes (the
// loops vectorize), the best refitted by weighted least squares and re-rounded while its score rises.
#include <algorithm>
#include <cassert>
#include <cmath>

#include "formats/rounding.h"
#include "formats/scale_search.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {
namespace {

constexpr int kCandidates = 16;  // coarse candidates of each sign over the window, then two around the best

// Sums of a rounding: s1 = sum w x q, s2 = sum w q^2 for q = round(x * t) (a grid code or a level value).
struct RoundSums {
  double s1 = 0, s2 = 0;
};

// q = clamp(round(x * t), lo, hi).
struct UniformGrid {
  float lo, hi;
  float operator()(float v) const { return round_clamped(v, lo, hi); }
};

// q = the nearest of N ascending levels (a select chain over the midpoints: it vectorizes).
template <int N>
struct LevelGrid {
  float vals[N], mids[N - 1];
  explicit LevelGrid(const int8_t* levels) {
    for (int k = 0; k < N; ++k) vals[k] = static_cast<float>(levels[k]);
    for (int k = 0; k + 1 < N; ++k) mids[k] = 0.5f * (vals[k] + vals[k + 1]);
  }
  float operator()(float v) const {
    float q = vals[0];
    for (int k = 0; k + 1 < N; ++k) q = v > mids[k] ? vals[k + 1] : q;
    return q;
  }
};

// Any number of levels (not vectorized: only IQ4's 16 are used by the encoders).
struct AnyLevels {
  const int8_t* levels;
  int n;
  float operator()(float v) const { return static_cast<float>(levels[nearest_level(v, levels, n)]); }
};

// The sums of K roundings at once: t[c] (c < K) the candidate inverse scales. The candidates are the inner
// loop (contiguous lanes: it vectorizes whatever n is); the float sums are redone in double for a candidate
// whose lanes overflowed (values near float's limit).
template <int K, typename Grid>
void round_sums(const float* x, const float* w, int n, const float* t, const Grid& grid, RoundSums* out) {
  float a1[K] = {}, a2[K] = {};
  for (int i = 0; i < n; ++i) {
    const float xi = x[i], wi = w[i];
    for (int c = 0; c < K; ++c) {
      const float q = grid(xi * t[c]);
      const float wq = wi * q;
      a1[c] += wq * xi;
      a2[c] += wq * q;
    }
  }
  for (int c = 0; c < K; ++c) {
    out[c] = {a1[c], a2[c]};
    if (std::isfinite(a1[c]) && std::isfinite(a2[c])) continue;
    out[c] = {};
    for (int i = 0; i < n; ++i) {
      const double q = grid(x[i] * t[c]), wq = static_cast<double>(w[i]) * q;
      out[c].s1 += wq * x[i];
      out[c].s2 += wq * q;
    }
  }
}

// Best scale of each sign for x ~ d * q, q = grid(x / d): candidates t = 1/d = +-u / amax for kCandidates
// values of u over [u_lo, u_hi] (both signs in one pass); then, in one pass, two more half a step either side of
// each sign's best and the least-squares refit of that best; then refits re-rounded while the score (the error
// reduction s1^2 / s2) rises.
template <typename Grid>
void grid_search(const float* x, const float* w, int n, float amax, double u_lo, double u_hi, const Grid& grid,
                 SymmetricFits& out) {
  constexpr int K = kCandidates;
  double* best_d[2] = {&out.positive, &out.negative};
  double* best_score[2] = {&out.positive_score, &out.negative_score};
  double best_u[2] = {0, 0};
  // Candidate c of sign index g (0: d > 0, 1: d < 0) with sums r: keeps it when its score is the best so far.
  auto consider = [&](int g, const RoundSums& r) {
    const int sign = g == 0 ? 1 : -1;
    if (!(r.s2 > 0) || !(r.s1 * sign > 0)) return false;
    if (!(r.s1 * r.s1 > *best_score[g] * r.s2)) return false;  // s1^2 / s2 > best, without a division
    *best_score[g] = r.s1 * r.s1 / r.s2;
    *best_d[g] = r.s1 / r.s2;
    return true;
  };
  const double step = (u_hi - u_lo) / (K - 1);
  {
    float t[2 * K];
    RoundSums r[2 * K];
    for (int c = 0; c < K; ++c) {
      t[c] = static_cast<float>((u_lo + step * c) / amax);
      t[K + c] = -t[c];
    }
    round_sums<2 * K>(x, w, n, t, grid, r);
    for (int g = 0; g < 2; ++g)
      for (int c = 0; c < K; ++c)
        if (consider(g, r[g * K + c])) best_u[g] = u_lo + step * c;
  }
  {
    // Lanes 0-3: half a step either side of each sign's best; 4-5: the least-squares refit of each (6-7
    // repeat them: eight lanes vectorize better than six).
    float t[8];
    RoundSums r[8];
    for (int g = 0; g < 2; ++g) {
      for (int h = 0; h < 2; ++h)
        t[2 * g + h] = static_cast<float>((g == 0 ? 1 : -1) * (best_u[g] + (h == 0 ? -0.5 : 0.5) * step) / amax);
      t[4 + g] = t[6 + g] = *best_d[g] != 0 ? static_cast<float>(1.0 / *best_d[g]) : 0.0f;
    }
    round_sums<8>(x, w, n, t, grid, r);
    for (int k = 0; k < 4; ++k) consider(k / 2, r[k]);
    for (int g = 0; g < 2; ++g)
      if (t[4 + g] != 0.0f) consider(g, r[4 + g]);
  }
  for (int it = 0; it < 2; ++it) {
    const double before[2] = {out.positive_score, out.negative_score};
    float t[2];
    RoundSums r[2];
    for (int g = 0; g < 2; ++g) t[g] = *best_d[g] != 0 ? static_cast<float>(1.0 / *best_d[g]) : 0.0f;
    round_sums<2>(x, w, n, t, grid, r);
    bool rose = false;
    for (int g = 0; g < 2; ++g)
      if (t[g] != 0.0f && consider(g, r[g]) && *best_score[g] > before[g] * (1 + 1e-9)) rose = true;
    if (!rose) break;
  }
}

float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

}  // namespace

SymmetricFits fit_symmetric_both_fast(const float* x, const float* w, int n, int lo, int hi) {
  SymmetricFits out;
  const float amax = abs_max(x, n);
  if (!(amax > 0.0f)) return out;
  // The window of the exact sweep (fit_symmetric_both).
  const int side = std::max(hi, -lo);
  const double u_lo = (side >= 16 ? 0.75 : 0.5) * side, u_hi = (side >= 16 ? 1.25 : 1.5) * side + 1.0;
  grid_search(x, w, n, amax, u_lo, u_hi, UniformGrid{static_cast<float>(lo), static_cast<float>(hi)}, out);
  return out;
}

SymmetricFits fit_levels_fast(const float* x, const float* w, int n, const int8_t* levels, int n_levels) {
  SymmetricFits out;
  const float amax = abs_max(x, n);
  if (!(amax > 0.0f)) return out;
  // The largest value between half the shorter side of the grid and past the longer side's end.
  const double lo_side = std::min(-static_cast<double>(levels[0]), static_cast<double>(levels[n_levels - 1]));
  const double hi_side = std::max(-static_cast<double>(levels[0]), static_cast<double>(levels[n_levels - 1]));
  const double u_lo = 0.5 * lo_side, u_hi = 1.25 * hi_side;
  if (n_levels == 16)
    grid_search(x, w, n, amax, u_lo, u_hi, LevelGrid<16>(levels), out);
  else
    grid_search(x, w, n, amax, u_lo, u_hi, AnyLevels{levels, n_levels}, out);
  return out;
}

}  // namespace pocketlm
