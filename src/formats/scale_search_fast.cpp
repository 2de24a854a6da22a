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
// U interleaved partial sums per lane (values i, i + U, ...) so that the additions do not wait on each other.
template <int K, typename Grid>
void round_sums(const float* x, const float* w, int n, const float* t, const Grid& grid, RoundSums* out) {
  constexpr int U = K >= 32 ? 2 : 4;
  float a1[U][K] = {}, a2[U][K] = {};
  int i = 0;
  for (; i + U <= n; i += U)
    for (int u = 0; u < U; ++u) {
      const float xi = x[i + u], wi = w[i + u];
      for (int c = 0; c < K; ++c) {
        const float q = grid(xi * t[c]);
        const float wq = wi * q;
        a1[u][c] += wq * xi;
        a2[u][c] += wq * q;
      }
    }
  for (; i < n; ++i)
    for (int c = 0; c < K; ++c) {
      const float q = grid(x[i] * t[c]);
      const float wq = w[i] * q;
      a1[0][c] += wq * x[i];
      a2[0][c] += wq * q;
    }
  for (int u = 1; u < U; ++u)
    for (int c = 0; c < K; ++c) {
      a1[0][c] += a1[u][c];
      a2[0][c] += a2[u][c];
    }
  for (int c = 0; c < K; ++c) {
    out[c] = {a1[0][c], a2[0][c]};
    if (std::isfinite(a1[0][c]) && std::isfinite(a2[0][c])) continue;
    out[c] = {};
    for (int j = 0; j < n; ++j) {
      const double q = grid(x[j] * t[c]), wq = static_cast<double>(w[j]) * q;
      out[c].s1 += wq * x[j];
      out[c].s2 += wq * q;
    }
  }
}

// Best scale of each sign g in gs (0: d > 0, 1: d < 0) for x ~ d * q, q = grid(x / d): candidates
// t = 1/d = +-u / amax for kCandidates values of u over [u_lo, u_hi] (every sign in one pass); then, in one
// pass, two more half a step either side of each sign's best and the least-squares refit of that best; then
// refits re-rounded while the score (the error reduction s1^2 / s2) rises.
template <int NS, typename Grid>
void grid_search(const float* x, const float* w, int n, float amax, double u_lo, double u_hi, const Grid& grid,
                 const int (&gs)[NS], SymmetricFits& out) {
  constexpr int K = kCandidates;
  double* best_d[2] = {&out.positive, &out.negative};
  double* best_score[2] = {&out.positive_score, &out.negative_score};
  double best_u[2] = {0, 0};
  // Sums r of a candidate of sign g: keeps it when its score is the best so far.
  auto consider = [&](int g, const RoundSums& r) {
    const int sign = g == 0 ? 1 : -1;
    if (!(r.s2 > 0) || !(r.s1 * sign > 0)) return false;
    if (!(r.s1 * r.s1 > *best_score[g] * r.s2)) return false;  // s1^2 / s2 > best, without a division
    *best_score[g] = r.s1 * r.s1 / r.s2;
    *best_d[g] = r.s1 / r.s2;
    return true;
  };
  auto refit_t = [&](int g) { return *best_d[g] != 0 ? static_cast<float>(1.0 / *best_d[g]) : 0.0f; };
  const double step = (u_hi - u_lo) / (K - 1);
  {
    float t[NS * K];
    RoundSums r[NS * K];
    for (int sl = 0; sl < NS; ++sl)
      for (int c = 0; c < K; ++c) t[sl * K + c] = static_cast<float>((gs[sl] == 0 ? 1 : -1) * (u_lo + step * c) / amax);
    round_sums<NS * K>(x, w, n, t, grid, r);
    for (int sl = 0; sl < NS; ++sl)
      for (int c = 0; c < K; ++c)
        if (consider(gs[sl], r[sl * K + c])) best_u[gs[sl]] = u_lo + step * c;
  }
  {
    // Per sign, lanes 0-1: half a step either side of its best; 2: the least-squares refit of the best (3
    // repeats it: four lanes a sign vectorize better than three).
    float t[4 * NS];
    RoundSums r[4 * NS];
    for (int sl = 0; sl < NS; ++sl) {
      const int g = gs[sl];
      for (int h = 0; h < 2; ++h)
        t[4 * sl + h] = static_cast<float>((g == 0 ? 1 : -1) * (best_u[g] + (h == 0 ? -0.5 : 0.5) * step) / amax);
      t[4 * sl + 2] = t[4 * sl + 3] = refit_t(g);
    }
    round_sums<4 * NS>(x, w, n, t, grid, r);
    for (int sl = 0; sl < NS; ++sl) {
      consider(gs[sl], r[4 * sl]);
      consider(gs[sl], r[4 * sl + 1]);
      if (t[4 * sl + 2] != 0.0f) consider(gs[sl], r[4 * sl + 2]);
    }
  }
  for (int it = 0; it < 2; ++it) {
    float t[NS];
    RoundSums r[NS];
    double before[NS];
    for (int sl = 0; sl < NS; ++sl) {
      t[sl] = refit_t(gs[sl]);
      before[sl] = *best_score[gs[sl]];
    }
    round_sums<NS>(x, w, n, t, grid, r);
    bool rose = false;
    for (int sl = 0; sl < NS; ++sl)
      if (t[sl] != 0.0f && consider(gs[sl], r[sl]) && *best_score[gs[sl]] > before[sl] * (1 + 1e-9)) rose = true;
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
  grid_search(x, w, n, amax, u_lo, u_hi, UniformGrid{static_cast<float>(lo), static_cast<float>(hi)}, {0, 1}, out);
  return out;
}

double fit_symmetric_fast(const float* x, const float* w, int n, int lo, int hi) {
  if (hi == -lo) {
    const SymmetricFits f = fit_symmetric_both_fast(x, w, n, lo, hi);
    return f.positive_score >= f.negative_score ? f.positive : f.negative;
  }
  float amax = 0.0f, vmax = 0.0f;  // the value of largest magnitude (the first of equal ones)
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  if (!(amax > 0.0f)) return 0.0;
  // The sign that puts the largest value on the longer side of the grid.
  const bool longer_negative = -lo > hi;
  const int g = (vmax > 0) == longer_negative ? 1 : 0;
  const int side = std::max(hi, -lo);
  const double u_lo = (side >= 16 ? 0.75 : 0.5) * side, u_hi = (side >= 16 ? 1.25 : 1.5) * side + 1.0;
  SymmetricFits out;
  grid_search(x, w, n, amax, u_lo, u_hi, UniformGrid{static_cast<float>(lo), static_cast<float>(hi)}, {g}, out);
  return g == 0 ? out.positive : out.negative;
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
    grid_search(x, w, n, amax, u_lo, u_hi, LevelGrid<16>(levels), {0, 1}, out);
  else
    grid_search(x, w, n, amax, u_lo, u_hi, AnyLevels{levels, n_levels}, {0, 1}, out);
  return out;
}

}  // namespace pocketlm
