#include "formats/scale_search.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {
namespace {
constexpr int kMaxGroup = 128;    // the largest group any encoder fits (legacy blocks: 32; q4_0_g128: 128)
constexpr int kMaxEvents = 8192;  // kMaxGroup * the largest grid half-width we sweep (32) * 2

// Sorts events packed as (float u bits << 32 | index), all with u in [u_lo, u_hi]: a bucket pass by u (monotone,
// so the buckets come in order) and an insertion sort inside each (a handful of events each): the same order
// as std::sort, several times faster on the few hundred events of a block.
void sort_events(uint64_t* ev, int count, double u_lo, double u_hi) {
  constexpr int kMaxBuckets = 1024;
  const int kBuckets = std::clamp(count / 2, 16, kMaxBuckets);  // about two events a bucket
  static thread_local uint64_t tmp[kMaxEvents];
  int start[kMaxBuckets + 1];
  std::fill(start, start + kBuckets + 1, 0);
  const double scale = u_hi > u_lo ? kBuckets / (u_hi - u_lo) : 0.0;
  auto bucket = [&](uint64_t e) {
    const uint32_t bits = static_cast<uint32_t>(e >> 32);
    float u;
    std::memcpy(&u, &bits, sizeof(u));
    const int b = static_cast<int>((static_cast<double>(u) - u_lo) * scale);
    return std::clamp(b, 0, kBuckets - 1);
  };
  for (int e = 0; e < count; ++e) ++start[bucket(ev[e]) + 1];
  for (int b = 0; b < kBuckets; ++b) start[b + 1] += start[b];
  int fill[kMaxBuckets];
  std::copy(start, start + kBuckets, fill);
  for (int e = 0; e < count; ++e) tmp[fill[bucket(ev[e])]++] = ev[e];
  for (int b = 0; b < kBuckets; ++b)
    for (int i = start[b] + 1; i < start[b + 1]; ++i) {
      const uint64_t v = tmp[i];
      int j = i - 1;
      while (j >= start[b] && tmp[j] > v) {
        tmp[j + 1] = tmp[j];
        --j;
      }
      tmp[j + 1] = v;
    }
  std::copy(tmp, tmp + count, ev);
}
}  // namespace

SymmetricFits fit_symmetric_both(const float* x, const float* w, int n, int lo, int hi) {
  assert(n <= kMaxGroup);
  SymmetricFits out;
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (!(amax > 0.0f)) return out;
  // Sweep u = t * amax (t = 1/d: u is where the largest value lands on the grid) over [u_lo, u_hi]. Mapping
  // the largest value below half the grid wastes levels, and clipping it by more than half the grid loses
  // more than it gains under weights that grow with |x|; the window bounds the work.
  const int side = std::max(hi, -lo);
  // Fine grids (16+ levels a side) need less room: the optimum sits near the top level.
  const double u_lo = (side >= 16 ? 0.75 : 0.5) * side, u_hi = (side >= 16 ? 1.25 : 1.5) * side + 1.0;
  // Events packed as (float u bits << 32 | element index): u > 0, so float order = integer order.
  static thread_local uint64_t events[kMaxEvents];
  int L[kMaxGroup];
  const int m = std::min(n, kMaxGroup);
  for (int sign = 1; sign >= -1; sign -= 2) {
    double best_score = 0.0, best_d = 0.0;
    int count = 0;
    double s1 = 0.0, s2 = 0.0;  // sum w y L and sum w L^2 for the current rounding
    for (int i = 0; i < m; ++i) {
      L[i] = 0;
      if (x[i] == 0.0f || !(w[i] > 0.0f)) continue;
      const double y = static_cast<double>(sign) * x[i];
      const int steps = y > 0 ? hi : -lo;
      const double r = static_cast<double>(amax) / std::fabs(y);  // >= 1: u at which |L| steps are (k + .5) r
      // |L| at u_lo: the number of steps below it.
      int k = static_cast<int>(std::min<double>(steps, std::max(0.0, std::floor(u_lo / r + 0.5))));
      L[i] = y > 0 ? k : -k;
      s1 += static_cast<double>(w[i]) * std::fabs(y) * k;
      s2 += static_cast<double>(w[i]) * k * k;
      for (; k < steps && count < kMaxEvents; ++k) {
        const double u = (k + 0.5) * r;
        if (u > u_hi) break;
        const float uf = static_cast<float>(u);
        uint32_t bits;
        std::memcpy(&bits, &uf, sizeof(bits));
        events[count++] = (static_cast<uint64_t>(bits) << 32) | static_cast<uint32_t>(i);
      }
    }
    sort_events(events, count, u_lo, u_hi);
    auto consider = [&] {
      if (s2 > 0.0) {
        const double score = s1 * s1 / s2;  // error reduction of the least-squares d for this rounding
        if (score > best_score) {
          best_score = score;
          best_d = sign * s1 / s2;
        }
      }
    };
    consider();
    for (int e = 0; e < count; ++e) {
      const int i = static_cast<int>(events[e] & 0xFFFFFFFFu);
      const double y = static_cast<double>(sign) * x[i];
      const int step = y > 0 ? 1 : -1;
      const int l0 = L[i], l1 = l0 + step;
      s1 += static_cast<double>(w[i]) * std::fabs(y);
      s2 += static_cast<double>(w[i]) * static_cast<double>(l1 * l1 - l0 * l0);
      L[i] = l1;
      if (e + 1 < count && (events[e + 1] >> 32) == (events[e] >> 32)) continue;  // simultaneous steps
      consider();
    }
    (sign > 0 ? out.positive : out.negative) = best_d;
    (sign > 0 ? out.positive_score : out.negative_score) = best_score;
  }
  return out;
}

SymmetricFits fit_levels(const float* x, const float* w, int n, const int8_t* levels, int n_levels) {
  assert(n <= kMaxGroup);
  SymmetricFits out;
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (!(amax > 0.0f)) return out;
  int zero = 0;  // the level nearest 0: where every value sits at t = 0
  for (int k = 1; k < n_levels; ++k)
    if (std::abs(levels[k]) < std::abs(levels[zero])) zero = k;
  const double side = std::max(-static_cast<double>(levels[0]), static_cast<double>(levels[n_levels - 1]));
  const double u_max = 2.0 * side;
  static thread_local uint64_t events[kMaxEvents];
  int L[kMaxGroup];
  const int m = std::min(n, kMaxGroup);
  for (int sign = 1; sign >= -1; sign -= 2) {
    double best_score = 0.0, best_d = 0.0;
    int count = 0;
    double s1 = 0.0, s2 = 0.0;
    for (int i = 0; i < m; ++i) {
      L[i] = zero;
      if (!(w[i] > 0.0f)) continue;
      const double y = static_cast<double>(sign) * x[i];
      const double g = levels[zero];
      s1 += static_cast<double>(w[i]) * y * g;
      s2 += static_cast<double>(w[i]) * g * g;
      if (y == 0) continue;
      const double r = static_cast<double>(amax) / std::fabs(y);
      // Steps away from zero: towards the top levels for y > 0, the bottom ones for y < 0, at the midpoints.
      for (int k = zero; y > 0 ? k + 1 < n_levels : k > 0; k += y > 0 ? 1 : -1) {
        const int next = y > 0 ? k + 1 : k - 1;
        const double mid = 0.5 * (levels[k] + levels[next]);
        const double u = std::fabs(mid) * r;
        if (u > u_max || count >= kMaxEvents) break;
        const float uf = static_cast<float>(u);
        uint32_t bits;
        std::memcpy(&bits, &uf, sizeof(bits));
        events[count++] = (static_cast<uint64_t>(bits) << 32) | static_cast<uint32_t>(i);
      }
    }
    sort_events(events, count, 0.0, u_max);
    auto consider = [&] {
      if (s1 > 0.0 && s2 > 0.0 && s1 * s1 / s2 > best_score) {
        best_score = s1 * s1 / s2;
        best_d = sign * s1 / s2;
      }
    };
    consider();
    for (int e = 0; e < count; ++e) {
      const int i = static_cast<int>(events[e] & 0xFFFFFFFFu);
      const double y = static_cast<double>(sign) * x[i];
      const int l0 = L[i], l1 = y > 0 ? l0 + 1 : l0 - 1;
      const double g0 = levels[l0], g1 = levels[l1];
      s1 += static_cast<double>(w[i]) * y * (g1 - g0);
      s2 += static_cast<double>(w[i]) * (g1 * g1 - g0 * g0);
      L[i] = l1;
      if (e + 1 < count && (events[e + 1] >> 32) == (events[e] >> 32)) continue;
      consider();
    }
    (sign > 0 ? out.positive : out.negative) = best_d;
    (sign > 0 ? out.positive_score : out.negative_score) = best_score;
  }
  return out;
}

namespace {
// levels_error's body for a fixed number of levels (a compile-time count unrolls the select chain, and the
// eight-lane loop around it vectorizes).
template <int N>
double levels_error_n(const float* x, const float* w, int n, float d, const int8_t* levels) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  float mids[N], vals[N];
  for (int k = 0; k < N; ++k) vals[k] = static_cast<float>(levels[k]);
  for (int k = 0; k + 1 < N; ++k) mids[k] = 0.5f * (vals[k] + vals[k + 1]);
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k8 = 0; k8 < 8; ++k8) {
      const float v = x[i + k8] * id;
      float q = vals[0];
      for (int k = 0; k + 1 < N; ++k) q = v > mids[k] ? vals[k + 1] : q;
      const float diff = d * q - x[i + k8];
      acc[k8] += w[i + k8] * diff * diff;
    }
  double err = 0;
  for (; i < n; ++i) {
    const float q = vals[nearest_level(x[i] * id, levels, N)];
    const float diff = d * q - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  for (float a : acc) err += a;
  if (std::isfinite(err)) return err;
  err = 0;  // values near float's limit overflow the float lanes: the same sum in double
  for (i = 0; i < n; ++i) {
    const double diff = static_cast<double>(d * vals[nearest_level(x[i] * id, levels, N)]) - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  return err;
}
}  // namespace

double levels_error(const float* x, const float* w, int n, float d, const int8_t* levels, int n_levels) {
  if (n_levels == 16) return levels_error_n<16>(x, w, n, d, levels);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  double err = 0;
  for (int i = 0; i < n; ++i) {
    const double diff =
        static_cast<double>(d * static_cast<float>(levels[nearest_level(x[i] * id, levels, n_levels)])) - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  return err;
}

double fit_symmetric(const float* x, const float* w, int n, int lo, int hi) {
  const SymmetricFits f = fit_symmetric_both(x, w, n, lo, hi);
  return f.positive_score >= f.negative_score ? f.positive : f.negative;
}

double symmetric_error(const float* x, const float* w, int n, float d, int lo, int hi) {
  // Eight lanes so that the loop vectorizes (n is a multiple of 8 for every caller; a tail is handled).
  float acc[8] = {};
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const float l = round_clamped(x[i + k] * id, flo, fhi);
      const float diff = d * l - x[i + k];
      acc[k] += w[i + k] * diff * diff;
    }
  double err = 0.0;
  for (; i < n; ++i) {
    const float diff = d * round_clamped(x[i] * id, flo, fhi) - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  for (float a : acc) err += a;
  if (std::isfinite(err)) return err;
  // Values near float's limit overflow the float lanes: the same sum in double.
  err = 0.0;
  for (i = 0; i < n; ++i) {
    const double diff = static_cast<double>(d * round_clamped(x[i] * id, flo, fhi)) - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  return err;
}

namespace {
struct Sums {
  double w = 0, x = 0, xx = 0;  // fixed per group
};

// Rounds with (d, m), fits (d, m) by weighted least squares on those L, returns the error of the fit.
double round_and_fit(const float* x, const float* w, int n, int nmax, bool allow_positive_min, const Sums& s,
                     double d_in, double m_in, AffineFit& out) {
  const float id = static_cast<float>(1.0 / d_in), mf = static_cast<float>(m_in), fmax_ = static_cast<float>(nmax);
  float a_l[8] = {}, a_ll[8] = {}, a_xl[8] = {};  // eight lanes: the loop vectorizes
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const float l = round_clamped((x[i + k] - mf) * id, 0.0f, fmax_);
      const float wl = w[i + k] * l;
      a_l[k] += wl;
      a_ll[k] += wl * l;
      a_xl[k] += wl * x[i + k];
    }
  double sl = 0, sll = 0, sxl = 0;
  for (; i < n; ++i) {
    const float l = round_clamped((x[i] - mf) * id, 0.0f, fmax_);
    sl += static_cast<double>(w[i]) * l;
    sll += static_cast<double>(w[i]) * l * l;
    sxl += static_cast<double>(w[i]) * l * x[i];
  }
  for (int k = 0; k < 8; ++k) {
    sl += a_l[k];
    sll += a_ll[k];
    sxl += a_xl[k];
  }
  if (!std::isfinite(sxl) || !std::isfinite(sll)) {  // values near float's limit: the sums in double
    sl = sll = sxl = 0;
    for (i = 0; i < n; ++i) {
      const double l = round_clamped((x[i] - mf) * id, 0.0f, fmax_), wl = static_cast<double>(w[i]) * l;
      sl += wl;
      sll += wl * l;
      sxl += wl * x[i];
    }
  }
  const double det = s.w * sll - sl * sl;
  double d, m;
  if (det > 0) {
    d = (s.w * sxl - s.x * sl) / det;
    m = (sll * s.x - sl * sxl) / det;
    if (!allow_positive_min && m > 0) {
      m = 0;
      d = sll > 0 ? sxl / sll : 0;
    }
  } else {  // every weighted L equal: only a constant is fitted
    d = d_in;
    m = s.w > 0 ? (s.x - d * sl) / s.w : 0;
    if (!allow_positive_min && m > 0) m = 0;
  }
  if (!(d > 0)) return HUGE_VAL;
  out = {d, m};
  // Error of (d, m) with these L: expanded sum of w (d L + m - x)^2.
  return s.xx - 2 * d * sxl - 2 * m * s.x + d * d * sll + 2 * d * m * sl + m * m * s.w;
}

// Weighted least-squares (d, m) for fixed L from the sums; returns the residual error (HUGE_VAL if d <= 0).
double solve_affine(const Sums& s, double sl, double sll, double sxl, bool allow_positive_min, AffineFit& out) {
  const double det = s.w * sll - sl * sl;
  if (!(det > 0) || !(sll > 0)) return HUGE_VAL;
  double d = (s.w * sxl - s.x * sl) / det;
  double m = (sll * s.x - sl * sxl) / det;
  if (!allow_positive_min && m > 0) {
    m = 0;
    d = sxl / sll;
  }
  if (!(d > 0)) return HUGE_VAL;
  out = {d, m};
  return s.xx - 2 * d * sxl - 2 * m * s.x + d * d * sll + 2 * d * m * sl + m * m * s.w;
}

// Coordinate descent over the quants: moves one L[i] by +-1 when the refitted (d, m) then has a smaller error.
// The sums are updated in O(1) per try. Returns the final error; `best` holds its fit.
double refine_affine_quants(const float* x, const float* w, int n, int nmax, bool allow_positive_min, const Sums& s,
                            AffineFit& best, double best_err, int max_passes) {
  int L[kMaxGroup];
  const double id = 1.0 / best.d;
  double sl = 0, sll = 0, sxl = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = nearest_int_clamped(static_cast<float>((x[i] - best.m) * id), 0, nmax);
    const double wl = static_cast<double>(w[i]) * L[i];
    sl += wl;
    sll += wl * L[i];
    sxl += wl * x[i];
  }
  AffineFit f;
  double err = solve_affine(s, sl, sll, sxl, allow_positive_min, f);
  if (err < best_err) {
    best_err = err;
    best = f;
  }
  for (int pass = 0; pass < max_passes; ++pass) {
    bool changed = false;
    for (int i = 0; i < n; ++i) {
      if (!(w[i] > 0)) continue;
      for (int step = -1; step <= 1; step += 2) {
        const int l1 = L[i] + step;
        if (l1 < 0 || l1 > nmax) continue;
        const double wi = w[i];
        const double nsl = sl + wi * step, nsll = sll + wi * (l1 * l1 - L[i] * L[i]), nsxl = sxl + wi * step * x[i];
        const double e = solve_affine(s, nsl, nsll, nsxl, allow_positive_min, f);
        if (e < best_err * (1 - 1e-12)) {
          best_err = e;
          best = f;
          sl = nsl;
          sll = nsll;
          sxl = nsxl;
          L[i] = l1;
          changed = true;
          break;
        }
      }
    }
    if (!changed) break;
  }
  return best_err;
}

double affine_error(const float* x, const float* w, int n, int nmax, double d, double m) {
  const double id = 1.0 / d;
  double err = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int_clamped(static_cast<float>((x[i] - m) * id), 0, nmax);
    const double diff = d * l + m - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  return err;
}
}  // namespace

AffineFit fit_affine(const float* x, const float* w, int n, int nmax, bool allow_positive_min, QuantSearch search) {
  assert(n <= kMaxGroup);
  float lo = x[0], hi = x[0];
  Sums s;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    s.w += w[i];
    s.x += static_cast<double>(w[i]) * x[i];
    s.xx += static_cast<double>(w[i]) * x[i] * x[i];
  }
  if (!allow_positive_min && lo > 0) lo = 0;
  AffineFit best{0, allow_positive_min ? static_cast<double>(lo) : std::min(0.0, static_cast<double>(lo))};
  if (!(hi > lo)) {  // constant group (or all zero): the offset alone, exact when allowed
    if (allow_positive_min || lo <= 0) best.m = lo;
    if (!allow_positive_min && hi > 0) {  // constant positive group without a positive offset: d * nmax
      best.m = 0;
      best.d = static_cast<double>(hi) / nmax;
    }
    return best;
  }
  const double range = static_cast<double>(hi) - lo;
  // The plain min/max mapping is the starting point; every candidate must beat its error.
  best = {range / nmax, static_cast<double>(lo)};
  double best_err = affine_error(x, w, n, nmax, best.d, best.m);
  const bool fast = search == QuantSearch::fast, nearest = search == QuantSearch::nearest;
  for (int k = -20; k <= 20; k += nearest ? 10 : fast ? 4 : 1) {
    const double d0 = range / (nmax + 0.05 * k);
    AffineFit f;
    const double err = round_and_fit(x, w, n, nmax, allow_positive_min, s, d0, lo, f);
    if (err < best_err) {
      best_err = err;
      best = f;
    }
  }
  if (n <= kMaxGroup && !nearest)
    best_err = refine_affine_quants(x, w, n, nmax, allow_positive_min, s, best, best_err, fast ? 1 : 4);
  // Alternate: re-round with the best (d, m), refit; stop when the error no longer falls.
  for (int it = 0; it < 4; ++it) {
    AffineFit f;
    const double err = round_and_fit(x, w, n, nmax, allow_positive_min, s, best.d, best.m, f);
    if (!(err < best_err * (1 - 1e-9))) break;
    best_err = err;
    best = f;
  }
  return best;
}

}  // namespace pocketlm
