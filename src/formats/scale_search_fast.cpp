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

// The sums of one rounding, the values as the lanes (eight partial sums): for one candidate this is several
// times cheaper than a pass with the candidates as the lanes. N constant so that the loop vectorizes.
template <int N, typename Grid>
RoundSums one_sums_n(const float* x, const float* w, float t, const Grid& grid) {
  float a1[8] = {}, a2[8] = {};
  for (int i = 0; i < N; i += 8)
    for (int k = 0; k < 8; ++k) {
      const float q = grid(x[i + k] * t);
      const float wq = w[i + k] * q;
      a1[k] += wq * x[i + k];
      a2[k] += wq * q;
    }
  RoundSums r;
  for (int k = 0; k < 8; ++k) {
    r.s1 += a1[k];
    r.s2 += a2[k];
  }
  if (std::isfinite(r.s1) && std::isfinite(r.s2)) return r;
  round_sums<1>(x, w, N, &t, grid, &r);  // overflowed lanes: round_sums redoes it in double
  return r;
}

template <typename Grid>
RoundSums one_sums(const float* x, const float* w, int n, float t, const Grid& grid) {
  switch (n) {
    case 16: return one_sums_n<16>(x, w, t, grid);
    case 32: return one_sums_n<32>(x, w, t, grid);
    case 64: return one_sums_n<64>(x, w, t, grid);
    case 128: return one_sums_n<128>(x, w, t, grid);
    default: {
      RoundSums r;
      round_sums<1>(x, w, n, &t, grid, &r);
      return r;
    }
  }
}

// Best scale of each sign g in gs (0: d > 0, 1: d < 0) for x ~ d * q, q = grid(x / d): candidates
// t = 1/d = +-u / amax for kCandidates values of u over [u_lo, u_hi] (every sign in one pass); then two more
// half a step either side of each sign's best and the least-squares refit of that best; then refits re-rounded
// while the score (the error reduction s1^2 / s2) rises.
template <int NS, typename Grid, int K = kCandidates>
void grid_search(const float* x, const float* w, int n, float amax, double u_lo, double u_hi, const Grid& grid,
                 const int (&gs)[NS], SymmetricFits& out) {
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
  for (int sl = 0; sl < NS; ++sl) {
    // Half a step either side of the coarse best and the least-squares refit of the best; then refits while the
    // score rises.
    const int g = gs[sl];
    const float t_lo = static_cast<float>((g == 0 ? 1 : -1) * (best_u[g] - 0.5 * step) / amax);
    const float t_hi = static_cast<float>((g == 0 ? 1 : -1) * (best_u[g] + 0.5 * step) / amax);
    const float t_fit = refit_t(g);
    if (K > kCandidates / 4) {  // the light search (QuantSearch::nearest) goes straight to the refits
      consider(g, one_sums(x, w, n, t_lo, grid));
      consider(g, one_sums(x, w, n, t_hi, grid));
    }
    if (t_fit != 0.0f) consider(g, one_sums(x, w, n, t_fit, grid));
    for (int it = 0; it < (K > kCandidates / 4 ? 2 : 0); ++it) {  // the light search: the first refit only
      const double before = *best_score[g];
      const float t = refit_t(g);
      if (t == 0.0f || !consider(g, one_sums(x, w, n, t, grid)) || !(*best_score[g] > before * (1 + 1e-9))) break;
    }
  }
}

float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

}  // namespace

SymmetricFits fit_symmetric_both_fast(const float* x, const float* w, int n, int lo, int hi, bool light) {
  SymmetricFits out;
  const float amax = abs_max(x, n);
  if (!(amax > 0.0f)) return out;
  // The window of the exact sweep (fit_symmetric_both).
  const int side = std::max(hi, -lo);
  const double u_lo = (side >= 16 ? 0.75 : 0.5) * side, u_hi = (side >= 16 ? 1.25 : 1.5) * side + 1.0;
  const UniformGrid grid{static_cast<float>(lo), static_cast<float>(hi)};
  if (light && side >= 32)
    grid_search<2, UniformGrid, kCandidates>(x, w, n, amax, u_lo, u_hi, grid, {0, 1}, out);
  else if (light)
    grid_search<2, UniformGrid, kCandidates / 4>(x, w, n, amax, u_lo, u_hi, grid, {0, 1}, out);
  else if (side >= 32)  // Q6_K's 64 levels: the score has more local optima across the window
    grid_search<2, UniformGrid, 2 * kCandidates>(x, w, n, amax, u_lo, u_hi, grid, {0, 1}, out);
  else
    grid_search(x, w, n, amax, u_lo, u_hi, grid, {0, 1}, out);
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
