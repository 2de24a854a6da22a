// Encoders of the k-quant super-block formats (layouts in kquants.h). See docs/quantization.md.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "formats/encode_weights.h"
#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/rounding.h"
#include "formats/scale_search.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {
namespace {

// ---- Affine super-blocks (Q2_K, Q4_K, Q5_K): value = (d * sc) * q - (dmin * mn), sc and mn in [0, kmax].
struct AffineSuper {
  uint16_t d = 0, dmin = 0;
  uint8_t sc[16] = {}, mn[16] = {};
  uint8_t L[QK_K] = {};
};

// Error of one sub-block for stored multipliers D = d * sc and M = dmin * mn, quants re-rounded; writes them to
// L when given. Eight lanes so that the loop vectorizes (sub-blocks are 16 or 32 long).
double affine_sub_error(const float* x, const float* w, int n, float D, float M, int nmax, uint8_t* L) {
  const float iD = D != 0.0f ? 1.0f / D : 0.0f, fmax_ = static_cast<float>(nmax);
  float acc[8] = {};
  for (int i = 0; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const float l = round_clamped((x[i + k] + M) * iD, 0.0f, fmax_);
      const float diff = D * l - M - x[i + k];
      acc[k] += w[i + k] * diff * diff;
    }
  if (L)
    for (int i = 0; i < n; ++i)
      L[i] = static_cast<uint8_t>(D != 0.0f ? nearest_int_clamped((x[i] + M) / D, 0, nmax) : 0);
  double err = 0;
  for (float a : acc) err += a;
  if (std::isfinite(err)) return err;
  err = 0;  // values near float's limit overflow the float lanes: the same sum in double
  for (int i = 0; i < n; ++i) {
    const double diff = static_cast<double>(D * round_clamped((x[i] + M) * iD, 0.0f, fmax_) - M) - x[i];
    err += static_cast<double>(w[i]) * diff * diff;
  }
  return err;
}

// A super-block transposed for QuantSearch::fast: element i of sub-block j at [i * n_sub + j], so that one
// pass scores a candidate multiplier for every sub-block at once (the sub-blocks are the vector lanes).
struct Transposed {
  float x[QK_K], w[QK_K];
  int n_sub = 0, sub = 0;
  Transposed(const float* x_, const float* w_, int n_sub_, int sub_) : n_sub(n_sub_), sub(sub_) {
    for (int j = 0; j < n_sub; ++j)
      for (int i = 0; i < sub; ++i) {
        x[i * n_sub + j] = x_[sub * j + i];
        w[i * n_sub + j] = w_[sub * j + i];
      }
  }
};

// Weighted errors of every sub-block j for kSlots candidate multipliers D[k][j], M[k][j] (value D * q - M, q
// re-rounded into [lo, hi]; M = 0 for the symmetric formats), in float lanes, every slot in one pass over the
// values; a sub-block whose lane overflowed (values near float's limit) is redone in double.
constexpr int kSlots = 4;
template <int NSUB, int kSlots = kSlots>
void sub_errors_n(const Transposed& t, const float (*D)[16], const float (*M)[16], float lo, float hi,
                  float (*err)[16]) {
  float iD[kSlots][NSUB], acc[kSlots][NSUB] = {};
  for (int k = 0; k < kSlots; ++k)
    for (int j = 0; j < NSUB; ++j) iD[k][j] = D[k][j] != 0.0f ? 1.0f / D[k][j] : 0.0f;
  for (int i = 0; i < t.sub; ++i)
    for (int k = 0; k < kSlots; ++k)
      for (int j = 0; j < NSUB; ++j) {
        const float xv = t.x[i * NSUB + j];
        const float l = round_clamped((xv + M[k][j]) * iD[k][j], lo, hi);
        const float diff = D[k][j] * l - M[k][j] - xv;
        acc[k][j] += t.w[i * NSUB + j] * diff * diff;
      }
  for (int k = 0; k < kSlots; ++k)
    for (int j = 0; j < NSUB; ++j) {
      err[k][j] = acc[k][j];
      if (std::isfinite(acc[k][j])) continue;
      double e = 0;
      for (int i = 0; i < t.sub; ++i) {
        const float xv = t.x[i * NSUB + j];
        const double diff = static_cast<double>(D[k][j] * round_clamped((xv + M[k][j]) * iD[k][j], lo, hi) - M[k][j]) -
                            static_cast<double>(xv);
        e += static_cast<double>(t.w[i * NSUB + j]) * diff * diff;
      }
      err[k][j] = static_cast<float>(std::min(e, 3.0e38));
    }
}

void sub_errors(const Transposed& t, const float (*D)[16], const float (*M)[16], float lo, float hi, float (*err)[16]) {
  if (t.n_sub == 16)
    sub_errors_n<16>(t, D, M, lo, hi, err);
  else
    sub_errors_n<8>(t, D, M, lo, hi, err);
}

// The f16 super-scales (or scale and min pairs) a QuantSearch::fast search has already scored: scoring one
// again gives the same error, which can never beat the best so far (candidates that round to the same f16 are
// common), so it is skipped.
class TriedScales {
 public:
  bool first_time(uint32_t key) {
    for (int i = 0; i < n_; ++i)
      if (keys_[i] == key) return false;
    if (n_ < kMax) keys_[n_++] = key;
    return true;
  }

 private:
  static constexpr int kMax = 96;
  uint32_t keys_[kMax];
  int n_ = 0;
};

// Integer candidates next to v (floor and ceil), clamped to [0, kmax].
int int_candidates(double v, int kmax, int out[2]) {
  if (!(v > 0)) {
    out[0] = 0;
    return 1;
  }
  const int f = static_cast<int>(std::min(std::floor(v), static_cast<double>(kmax)));
  out[0] = f;
  if (f + 1 <= kmax && static_cast<double>(f) != v) {
    out[1] = f + 1;
    return 2;
  }
  return 1;
}

// Best (sc, mn) of every sub-block for the given f16 super-scales; returns the total error. Writes into s.
double affine_assign(const float* x, const float* w, int n_sub, int sub, int nmax, int kmax, const double* dsub,
                     const double* msub, uint16_t dh, uint16_t mh, AffineSuper* s) {
  const float d = fp16_to_fp32(dh), dmin = fp16_to_fp32(mh);
  double total = 0;
  for (int j = 0; j < n_sub; ++j) {
    int scs[2], mns[2];
    const int nsc = d > 0 ? int_candidates(dsub[j] / d, kmax, scs) : (scs[0] = 0, 1);
    const int nmn = dmin > 0 ? int_candidates(msub[j] / dmin, kmax, mns) : (mns[0] = 0, 1);
    double best = HUGE_VAL;
    int bsc = 0, bmn = 0;
    for (int a = 0; a < nsc; ++a)
      for (int b = 0; b < nmn; ++b) {
        const float D = d * static_cast<float>(scs[a]);
        const float M = dmin * static_cast<float>(mns[b]);
        const double err = affine_sub_error(x + sub * j, w + sub * j, sub, D, M, nmax, nullptr);
        if (err < best) {
          best = err;
          bsc = scs[a];
          bmn = mns[b];
        }
      }
    total += best;
    if (s) {
      s->sc[j] = static_cast<uint8_t>(bsc);
      s->mn[j] = static_cast<uint8_t>(bmn);
    }
  }
  return total;
}

// affine_assign for QuantSearch::fast: the same candidates (up to four (sc, mn) pairs per sub-block), each
// slot scored for all sub-blocks in one pass of sub_errors; the first best of each sub-block as there.
double affine_assign_fast(const Transposed& t, int nmax, int kmax, const double* dsub, const double* msub, uint16_t dh,
                          uint16_t mh, AffineSuper* s) {
  const float d = fp16_to_fp32(dh), dmin = fp16_to_fp32(mh);
  const int n_sub = t.n_sub;
  int sc[4][16], mn[4][16];
  for (int j = 0; j < n_sub; ++j) {
    int scs[2], mns[2];
    const int nsc = d > 0 ? int_candidates(dsub[j] / d, kmax, scs) : (scs[0] = 0, 1);
    const int nmn = dmin > 0 ? int_candidates(msub[j] / dmin, kmax, mns) : (mns[0] = 0, 1);
    for (int k = 0; k < 4; ++k) {  // slot k = (a, b) with a = k / 2, b = k % 2; a missing one repeats slot 0
      const int a = k / 2, b = k % 2;
      const bool ok = a < nsc && b < nmn;
      sc[k][j] = ok ? scs[a] : scs[0];
      mn[k][j] = ok ? mns[b] : mns[0];
    }
  }
  float err[kSlots][16], D[kSlots][16], M[kSlots][16];
  for (int k = 0; k < kSlots; ++k)
    for (int j = 0; j < n_sub; ++j) {
      D[k][j] = d * static_cast<float>(sc[k][j]);
      M[k][j] = dmin * static_cast<float>(mn[k][j]);
    }
  sub_errors(t, D, M, 0.0f, static_cast<float>(nmax), err);
  double total = 0;
  for (int j = 0; j < n_sub; ++j) {
    int best = 0;
    for (int k = 1; k < 4; ++k)
      if (err[k][j] < err[best][j]) best = k;
    total += err[best][j];
    if (s) {
      s->sc[j] = static_cast<uint8_t>(sc[best][j]);
      s->mn[j] = static_cast<uint8_t>(mn[best][j]);
    }
  }
  return total;
}

// Candidate super-scales for sub-block values v[j] >= 0 mapped onto integers [0, kmax]: the max-based scale,
// slightly larger steps (so the largest is not the only one on a grid point), and a weighted least-squares
// refit of each to its rounded integers.
std::vector<double> super_candidates(const double* v, const double* sw, int n_sub, int kmax) {
  double vmax = 0;
  for (int j = 0; j < n_sub; ++j) vmax = std::max(vmax, v[j]);
  if (!(vmax > 0)) return {0.0};
  std::vector<double> out;
  // Max-based and slightly coarser steps, and finer ones that clip the largest sub-block values.
  for (double f : {1.0 + 1.0 / kmax, 1.0, 0.9, 0.75}) {
    const double s = vmax * f / kmax;
    out.push_back(s);
    double num = 0, den = 0;
    for (int j = 0; j < n_sub; ++j) {
      const double q = std::min<double>(kmax, std::nearbyint(v[j] / s));
      num += sw[j] * q * v[j];
      den += sw[j] * q * q;
    }
    if (den > 0) out.push_back(num / den);
  }
  return out;
}

void encode_affine_super(const float* x, const float* w, int n_sub, int sub, int nmax, int kmax, QuantSearch search,
                         AffineSuper& s) {
  double dsub[16], msub[16], sw[16];
  for (int j = 0; j < n_sub; ++j) {
    const AffineFit f = fit_affine(x + sub * j, w + sub * j, sub, nmax, /*allow_positive_min=*/false, search);
    dsub[j] = f.d;
    msub[j] = -f.m;  // >= 0
    double sum = 0;
    for (int i = 0; i < sub; ++i) sum += w[sub * j + i];
    sw[j] = sum;
  }
  // QuantSearch::nearest: the light sub-block fits (fit_affine), only the first pairs of super-scales (the largest
  // sub-block values over kmax and their refits) and the joint refit: no search of either super-scale alone.
  const bool nearest = search == QuantSearch::nearest, fast = search == QuantSearch::fast || nearest;
  std::optional<Transposed> tr;
  if (fast) tr.emplace(x, w, n_sub, sub);
  TriedScales tried;
  auto assign = [&](uint16_t dh, uint16_t mh, AffineSuper* out) {
    if (!fast) return affine_assign(x, w, n_sub, sub, nmax, kmax, dsub, msub, dh, mh, out);
    if (!out && !tried.first_time(static_cast<uint32_t>(dh) << 16 | mh)) return HUGE_VAL;
    return affine_assign_fast(*tr, nmax, kmax, dsub, msub, dh, mh, out);
  };
  const std::vector<double> dcands = super_candidates(dsub, sw, n_sub, kmax);
  const std::vector<double> mcands = super_candidates(msub, sw, n_sub, kmax);
  // Start from the best pair made the same way for both (the same factor of the largest sub-block value, or
  // both its refits: the candidate lists are built alike), then the scale given the min scale, the min scale
  // given the scale, and the scale again. Judging the scales with a min scale made another way could settle
  // both a factor off together (d * 64/63 with every sub-scale one lower fits almost as well).
  uint16_t best_d = fp16_finite(dcands[0]), best_m = fp16_finite(mcands[0]);
  double best = HUGE_VAL;
  for (size_t i = 0; i < dcands.size() && i < mcands.size() && !(nearest && i >= 4); ++i) {
    const uint16_t dh = fp16_finite(dcands[i]), mh = fp16_finite(mcands[i]);
    const double err = assign(dh, mh, nullptr);
    if (err < best) {
      best = err;
      best_d = dh;
      best_m = mh;
    }
  }
  // QuantSearch::fast: one round (the scale, then the min scale), no local refinement, one joint refit.
  for (int round = 0; round < (nearest ? 0 : 2); ++round) {
    if (fast && round == 1) break;
    for (double c : dcands) {
      const uint16_t dh = fp16_finite(c);
      const double err = assign(dh, best_m, nullptr);
      if (err < best) {
        best = err;
        best_d = dh;
      }
    }
    if (round == 1) break;
    for (double c : mcands) {
      const uint16_t mh = fp16_finite(c);
      const double err = assign(best_d, mh, nullptr);
      if (err < best) {
        best = err;
        best_m = mh;
      }
    }
  }
  // Local refinement of both: small relative steps of each in turn.
  for (int which = 0; which < (fast ? 0 : 2); ++which) {
    const double base = fp16_to_fp32(which == 0 ? best_d : best_m);
    if (base == 0) continue;
    for (double f : {0.97, 0.98, 0.99, 1.01, 1.02, 1.03}) {
      const uint16_t h = fp16_finite(base * f);
      const uint16_t dh = which == 0 ? h : best_d, mh = which == 0 ? best_m : h;
      const double err = assign(dh, mh, nullptr);
      if (err < best) {
        best = err;
        best_d = dh;
        best_m = mh;
      }
    }
  }
  // Joint refit of both super-scales with every integer held (sub-block multipliers and quants): a weighted
  // least-squares solve of x ~ d * (sc * L) - dmin * mn, and the f16 neighbours of its solution. The
  // per-sub-block fits above are not unique when a sub-block uses few levels, so the candidates can all miss
  // the super-scales of values that lie on a grid (a q4_K tensor dequantized and quantized again).
  for (int iter = 0; iter < (fast ? 1 : 2); ++iter) {
    AffineSuper t;
    assign(best_d, best_m, &t);
    const float d0 = fp16_to_fp32(best_d), m0 = fp16_to_fp32(best_m);
    double saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0;
    for (int j = 0; j < n_sub; ++j) {
      uint8_t L[32];
      affine_sub_error(x + sub * j, w + sub * j, sub, d0 * static_cast<float>(t.sc[j]),
                       m0 * static_cast<float>(t.mn[j]), nmax, L);
      for (int i = 0; i < sub; ++i) {
        const double wi = w[sub * j + i], xi = x[sub * j + i];
        const double a = static_cast<double>(t.sc[j]) * L[i], b = t.mn[j];
        saa += wi * a * a;
        sab += wi * a * b;
        sbb += wi * b * b;
        sax += wi * a * xi;
        sbx += wi * b * xi;
      }
    }
    const double det = saa * sbb - sab * sab;
    if (!(det > 1e-12 * saa * sbb) || !(saa > 0)) break;
    const double dn = (sax * sbb - sbx * sab) / det, mn = (sax * sab - sbx * saa) / det;
    if (!(dn > 0) || !(mn >= 0)) break;
    bool improved = false;
    const uint16_t dh0 = fp16_finite(dn), mh0 = fp16_finite(mn);
    for (int dd = -1; dd <= 1; ++dd)
      for (int dm = -1; dm <= 1; ++dm) {
        const uint16_t dh = dd == 0 ? dh0 : fp16_step(dh0, dd), mh = dm == 0 ? mh0 : fp16_step(mh0, dm);
        const double err = assign(dh, mh, nullptr);
        if (err < best) {
          best = err;
          best_d = dh;
          best_m = mh;
          improved = true;
        }
      }
    if (!improved) break;
  }
  s.d = best_d;
  s.dmin = best_m;
  assign(best_d, best_m, &s);
  const float d = fp16_to_fp32(best_d), dmin = fp16_to_fp32(best_m);
  for (int j = 0; j < n_sub; ++j)
    affine_sub_error(x + sub * j, w + sub * j, sub, d * static_cast<float>(s.sc[j]), dmin * static_cast<float>(s.mn[j]),
                     nmax, s.L + sub * j);
}

// ---- Symmetric super-blocks (Q3_K, Q6_K): value = (d * sc) * q, sc in [sc_lo, sc_hi], q in [lo, hi].
struct SymmetricSuper {
  uint16_t d = 0;
  int8_t sc[16] = {};
  int8_t L[QK_K] = {};
};

// Best integer sub-scale of every sub-block for the f16 super-scale dh: the integers next to both signed
// sub-block fits (the grid [lo, hi] is not symmetric, so either sign may win once scales are integers).
double symmetric_assign(const float* x, const float* w, int lo, int hi, int sc_lo, int sc_hi, const SymmetricFits* fits,
                        uint16_t dh, SymmetricSuper* s) {
  const float d = fp16_to_fp32(dh);
  double total = 0;
  for (int j = 0; j < 16; ++j) {
    int cand[4] = {0, 0, 0, 0};
    int nc = 1;
    if (d != 0.0f) {
      nc = 0;
      for (double sub : {fits[j].positive, fits[j].negative}) {
        if (sub == 0) continue;
        const double f = std::floor(sub / d);
        for (double c : {f, f + 1}) {
          const int ci = static_cast<int>(std::clamp(c, static_cast<double>(sc_lo), static_cast<double>(sc_hi)));
          if (std::find(cand, cand + nc, ci) == cand + nc) cand[nc++] = ci;
        }
      }
      if (nc == 0) nc = 1;
    }
    double best = HUGE_VAL;
    int bsc = 0;
    for (int a = 0; a < nc; ++a) {
      const double err = symmetric_error(x + 16 * j, w + 16 * j, 16, d * static_cast<float>(cand[a]), lo, hi);
      if (err < best) {
        best = err;
        bsc = cand[a];
      }
    }
    total += best;
    if (s) s->sc[j] = static_cast<int8_t>(bsc);
  }
  return total;
}

// symmetric_assign for QuantSearch::fast: the same candidates (up to four integer sub-scales per sub-block),
// each slot scored for all 16 sub-blocks in one pass of sub_errors; the first best of each as there.
// QuantSearch::nearest's version: the two integers next to the better-scoring sign's fit only (two slots).
double symmetric_assign_light(const Transposed& t, int lo, int hi, int sc_lo, int sc_hi, const SymmetricFits* fits,
                              uint16_t dh, SymmetricSuper* s) {
  const float d = fp16_to_fp32(dh);
  int cand[2][16];
  const double id = d != 0.0f ? 1.0 / d : 0.0;
  for (int j = 0; j < 16; ++j) {
    const double p = fits[j].positive_score >= fits[j].negative_score ? fits[j].positive : fits[j].negative;
    const double fp = std::floor(p * id), vlo = sc_lo, vhi = sc_hi;
    cand[0][j] = static_cast<int>(std::clamp(fp, vlo, vhi));
    cand[1][j] = static_cast<int>(std::clamp(fp + 1, vlo, vhi));
  }
  float err[2][16], D[2][16];
  const float M[2][16] = {};
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 16; ++j) D[k][j] = d * static_cast<float>(cand[k][j]);
  sub_errors_n<16, 2>(t, D, M, static_cast<float>(lo), static_cast<float>(hi), err);
  double total = 0;
  for (int j = 0; j < 16; ++j) {
    const int best = err[1][j] < err[0][j] ? 1 : 0;
    total += err[best][j];
    if (s) s->sc[j] = static_cast<int8_t>(cand[best][j]);
  }
  return total;
}

double symmetric_assign_fast(const Transposed& t, int lo, int hi, int sc_lo, int sc_hi, const SymmetricFits* fits,
                             uint16_t dh, SymmetricSuper* s) {
  const float d = fp16_to_fp32(dh);
  // Slots 0-1: floor and floor + 1 of the positive fit / d, 2-3: of the negative fit (a missing fit takes the
  // other's integers; a repeated integer only repeats an error). Branch-free so that it vectorizes.
  int cand[4][16];
  const double id = d != 0.0f ? 1.0 / d : 0.0;
  for (int j = 0; j < 16; ++j) {
    const double p = fits[j].positive != 0 ? fits[j].positive : fits[j].negative;
    const double q = fits[j].negative != 0 ? fits[j].negative : fits[j].positive;
    const double fp = std::floor(p * id), fq = std::floor(q * id);
    const double vlo = sc_lo, vhi = sc_hi;
    cand[0][j] = static_cast<int>(std::clamp(fp, vlo, vhi));
    cand[1][j] = static_cast<int>(std::clamp(fp + 1, vlo, vhi));
    cand[2][j] = static_cast<int>(std::clamp(fq, vlo, vhi));
    cand[3][j] = static_cast<int>(std::clamp(fq + 1, vlo, vhi));
  }
  float err[kSlots][16], D[kSlots][16];
  const float M[kSlots][16] = {};
  for (int k = 0; k < kSlots; ++k)
    for (int j = 0; j < 16; ++j) D[k][j] = d * static_cast<float>(cand[k][j]);
  sub_errors(t, D, M, static_cast<float>(lo), static_cast<float>(hi), err);
  double total = 0;
  for (int j = 0; j < 16; ++j) {
    int best = 0;
    for (int k = 1; k < 4; ++k)
      if (err[k][j] < err[best][j]) best = k;
    total += err[best][j];
    if (s) s->sc[j] = static_cast<int8_t>(cand[best][j]);
  }
  return total;
}

// QuantSearch::nearest's sub-block fits of Q3_K (16 sub-blocks of 16 values): per sign, kLightCandidates inverse
// scales over fit_symmetric_both_fast's window and the least-squares refit of the best, with the sub-blocks as
// the vector lanes (the transposed super-block) instead of one call per sub-block and candidate. A sub-block
// with values beyond 1e15 (float sums could overflow) takes the per-sub-block search.
constexpr int kLightCandidates = 4;
void light_symmetric_fits(const Transposed& t, const float* x, const float* w, int lo, int hi, SymmetricFits* fits) {
  constexpr int N = 16;
  float amax[N] = {};
  for (int i = 0; i < t.sub; ++i)
    for (int j = 0; j < N; ++j) amax[j] = std::max(amax[j], std::fabs(t.x[i * N + j]));
  const int side = std::max(hi, -lo);
  const double u_lo = 0.5 * side, u_hi = 1.5 * side + 1.0;  // fit_symmetric_both_fast's window for side < 16
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  for (int g = 0; g < 2; ++g) {
    const double sign = g == 0 ? 1.0 : -1.0;
    double best_score[N] = {}, best_d[N] = {};
    for (int c = 0; c <= kLightCandidates; ++c) {  // c == kLightCandidates: the refit of the best
      float tv[N];
      const double u = u_lo + (u_hi - u_lo) * c / (kLightCandidates - 1);
      for (int j = 0; j < N; ++j)
        tv[j] = c < kLightCandidates ? (amax[j] > 0 ? static_cast<float>(sign * u / amax[j]) : 0.0f)
                                     : (best_d[j] != 0 ? static_cast<float>(1.0 / best_d[j]) : 0.0f);
      float s1[N] = {}, s2[N] = {};
      for (int i = 0; i < t.sub; ++i)
        for (int j = 0; j < N; ++j) {
          const float xv = t.x[i * N + j], q = round_clamped(xv * tv[j], flo, fhi), wq = t.w[i * N + j] * q;
          s1[j] += wq * xv;
          s2[j] += wq * q;
        }
      for (int j = 0; j < N; ++j) {
        const double a = s1[j], b = s2[j];
        if (b > 0 && a * sign > 0 && a * a > best_score[j] * b) {
          best_score[j] = a * a / b;
          best_d[j] = a / b;
        }
      }
    }
    for (int j = 0; j < N; ++j) (g == 0 ? fits[j].positive : fits[j].negative) = best_d[j];
    for (int j = 0; j < N; ++j) (g == 0 ? fits[j].positive_score : fits[j].negative_score) = best_score[j];
  }
  for (int j = 0; j < N; ++j)
    if (amax[j] > 1e15f) fits[j] = fit_symmetric_both_fast(x + 16 * j, w + 16 * j, 16, lo, hi, /*light=*/true);
}

void encode_symmetric_super(const float* x, const float* w, int lo, int hi, int sc_lo, int sc_hi, QuantSearch search,
                            SymmetricSuper& s) {
  // QuantSearch::nearest: light sub-block fits (Q3_K: light_symmetric_fits; Q6_K: a quarter of the candidates),
  // only the largest sub-scale over either end of the integer range (and their refits) as super-scales, no local
  // refinement, one joint refit.
  const bool nearest = search == QuantSearch::nearest;
  std::optional<Transposed> tr;
  if (search != QuantSearch::exact) tr.emplace(x, w, 16, 16);
  double ssub[16], sw[16];
  SymmetricFits fits[16];
  if (nearest && hi - lo < 16) light_symmetric_fits(*tr, x, w, lo, hi, fits);
  double smax = 0;
  for (int j = 0; j < 16; ++j) {
    if (!(nearest && hi - lo < 16)) fits[j] = fit_symmetric_both(x + 16 * j, w + 16 * j, 16, lo, hi, search);
    ssub[j] = fits[j].positive_score >= fits[j].negative_score ? fits[j].positive : fits[j].negative;
    if (std::fabs(ssub[j]) > std::fabs(smax)) smax = ssub[j];
    double sum = 0;
    for (int i = 0; i < 16; ++i) sum += w[16 * j + i];
    sw[j] = sum;
  }
  TriedScales tried;
  auto assign = [&](uint16_t dh, SymmetricSuper* out) {
    if (!tr) return symmetric_assign(x, w, lo, hi, sc_lo, sc_hi, fits, dh, out);
    if (!out && !tried.first_time(dh)) return HUGE_VAL;
    if (nearest) return symmetric_assign_light(*tr, lo, hi, sc_lo, sc_hi, fits, dh, out);
    return symmetric_assign_fast(*tr, lo, hi, sc_lo, sc_hi, fits, dh, out);
  };
  std::vector<double> cands;
  if (smax != 0) {
    // The largest sub-scale on either end of the integer range (which is not symmetric), a little inside it,
    // and the weighted least-squares refit of each to its rounded integers.
    // Smaller steps clip the largest sub-scales so that the many small ones get more levels (outliers).
    // QuantSearch::fast: steps of 0.1 instead of 0.05, and half the local refinement below.
    const double f_step = search == QuantSearch::fast ? 0.1 : 0.05;
    for (int end : {sc_lo, sc_hi})
      for (double f = 1.0; f > (nearest ? 0.99 : sc_hi > 31 ? 0.85 : 0.3); f -= f_step) {  // 8-bit: less clipping
        const double c = smax * f / end;
        cands.push_back(c);
        double num = 0, den = 0;
        for (int j = 0; j < 16; ++j) {
          const double q =
              std::clamp(std::nearbyint(ssub[j] / c), static_cast<double>(sc_lo), static_cast<double>(sc_hi));
          num += sw[j] * q * ssub[j];
          den += sw[j] * q * q;
        }
        if (den > 0) cands.push_back(num / den);
      }
  } else {
    cands.push_back(0.0);
  }
  double best = HUGE_VAL;
  uint16_t best_d = 0;
  for (double c : cands) {
    const uint16_t dh = fp16_finite(c);
    const double err = assign(dh, nullptr);
    if (err < best) {
      best = err;
      best_d = dh;
    }
  }
  // Local refinement around the winner: small relative steps, then its f16 neighbours.
  const double base = fp16_to_fp32(best_d);
  for (double f : {0.96, 0.97, 0.98, 0.99, 1.01, 1.02, 1.03, 1.04}) {
    if (nearest || (search == QuantSearch::fast && std::fabs(f - 1.0) > 0.025)) continue;
    const uint16_t dh = fp16_finite(base * f);
    const double err = assign(dh, nullptr);
    if (err < best) {
      best = err;
      best_d = dh;
    }
  }
  for (int dir = -1; dir <= (nearest ? -3 : 1); dir += 2) {  // nearest: no f16 neighbours
    const uint16_t dh = fp16_step(best_d, dir);
    const double err = assign(dh, nullptr);
    if (err < best) {
      best = err;
      best_d = dh;
    }
  }
  // Refit of the super-scale with every integer held (sub-scales and quants), and its f16 neighbours: as in
  // encode_affine_super, this recovers values that lie on a grid when the sub-block fits do not.
  for (int iter = 0; iter < (nearest ? 1 : 2); ++iter) {
    SymmetricSuper t;
    assign(best_d, &t);
    const float d0 = fp16_to_fp32(best_d);
    double num = 0, den = 0;
    for (int j = 0; j < 16; ++j) {
      const float D = d0 * static_cast<float>(t.sc[j]);
      if (D == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {  // round_clamped: nearest_int_clamped's value, and it vectorizes
        const double a = static_cast<double>(t.sc[j]) *
                         round_clamped(x[16 * j + i] / D, static_cast<float>(lo), static_cast<float>(hi));
        num += static_cast<double>(w[16 * j + i]) * a * x[16 * j + i];
        den += static_cast<double>(w[16 * j + i]) * a * a;
      }
    }
    if (!(den > 0)) break;
    bool improved = false;
    const uint16_t dh0 = fp16_finite(num / den);
    for (int dir = nearest ? 0 : -1; dir <= (nearest ? 0 : 1); ++dir) {
      const uint16_t dh = dir == 0 ? dh0 : fp16_step(dh0, dir);
      const double err = assign(dh, nullptr);
      if (err < best) {
        best = err;
        best_d = dh;
        improved = true;
      }
    }
    if (!improved) break;
  }
  s.d = best_d;
  assign(best_d, &s);
  const float d = fp16_to_fp32(best_d);
  for (int j = 0; j < 16; ++j) {
    const float D = d * static_cast<float>(s.sc[j]);
    if (D == 0.0f) {
      std::fill(s.L + 16 * j, s.L + 16 * j + 16, int8_t{0});
      continue;
    }
    for (int i = 0; i < 16; ++i)
      s.L[16 * j + i] =
          static_cast<int8_t>(round_clamped(x[16 * j + i] / D, static_cast<float>(lo), static_cast<float>(hi)));
  }
}

template <typename Fn>
void for_each_super_block(const float* x, int64_t n, const float* importance, Fn&& fn) {
  assert(n % QK_K == 0);
  float w[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float* xb = x + QK_K * b;
    search_weights(xb, importance ? importance + QK_K * b : nullptr, QK_K, mean_square(xb, QK_K), w);
    fn(b, xb, w);
  }
}

// Q2_K / Q3_K: element 128h + 32s + l in bits 2s..2s+1 of qs[32h + l].
void pack_2bit(const int8_t* u, uint8_t qs[QK_K / 4]) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      int byte = 0;
      for (int s = 0; s < 4; ++s) byte |= (u[128 * h + 32 * s + l] & 3) << (2 * s);
      qs[32 * h + l] = static_cast<uint8_t>(byte);
    }
}

// Q4_K / Q5_K: the 6-bit scales and mins (the inverse of k_scale_min).
void pack_scale_min(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[K_SCALE_SIZE]) {
  std::memset(out, 0, K_SCALE_SIZE);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = static_cast<uint8_t>(out[j] | sc[j]);
      out[j + 4] = static_cast<uint8_t>(out[j + 4] | mn[j]);
    } else {
      out[j + 4] = static_cast<uint8_t>((sc[j] & 0x0F) | ((mn[j] & 0x0F) << 4));
      out[j - 4] = static_cast<uint8_t>(out[j - 4] | ((sc[j] >> 4) << 6));
      out[j] = static_cast<uint8_t>(out[j] | ((mn[j] >> 4) << 6));
    }
  }
}

}  // namespace

void pack_quants_q2_K(const int8_t L[QK_K], block_q2_K& y) { pack_2bit(L, y.qs); }

void pack_quants_q3_K(const int8_t L[QK_K], block_q3_K& y) {
  // Element 128h + 32s + l: low 2 bits of q + 4 in qs, its third bit as bit 4h + s of hmask[l].
  int8_t u[QK_K];
  for (int i = 0; i < QK_K; ++i) u[i] = static_cast<int8_t>((L[i] + 4) & 3);
  for (int l = 0; l < 32; ++l) {  // branch-free: bit b = 4h + s of hmask[l] from element 32b + l
    int m = 0;
    for (int b = 0; b < 8; ++b) m |= ((L[32 * b + l] + 4) >> 2 & 1) << b;
    y.hmask[l] = static_cast<uint8_t>(m);
  }
  pack_2bit(u, y.qs);
}

void pack_quants_q4_K(const int8_t L[QK_K], block_q4_K& y) {
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) y.qs[32 * p + l] = static_cast<uint8_t>(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
}

void pack_quants_q5_K(const int8_t L[QK_K], block_q5_K& y) {
  std::memset(y.qh, 0, sizeof(y.qh));
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) {
      const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
      y.qs[32 * p + l] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
      y.qh[l] = static_cast<uint8_t>(y.qh[l] | ((lo >> 4) << (2 * p)) | ((hi >> 4) << (2 * p + 1)));
    }
}

void pack_quants_q6_K(const int8_t L[QK_K], block_q6_K& y) {
  std::memset(y.ql, 0, sizeof(y.ql));
  std::memset(y.qh, 0, sizeof(y.qh));
  // Element 128h + 32k + l: low nibble in ql[64h + 32(k & 1) + l] (high nibble for k >= 2), top 2 bits as
  // bits 2k..2k+1 of qh[32h + l].
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const int v = L[128 * h + 32 * k + l] + 32;
        uint8_t& lb = y.ql[64 * h + 32 * (k & 1) + l];
        lb = static_cast<uint8_t>(lb | ((v & 0x0F) << (k < 2 ? 0 : 4)));
        y.qh[32 * h + l] = static_cast<uint8_t>(y.qh[32 * h + l] | ((v >> 4) << (2 * k)));
      }
}

void encode_row_q2_K(const float* x, block_q2_K* y, int64_t n, const float* importance, QuantSearch search) {
  for_each_super_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    AffineSuper s;
    encode_affine_super(xb, w, 16, 16, 3, 15, search, s);
    y[b].d = s.d;
    y[b].dmin = s.dmin;
    for (int j = 0; j < 16; ++j) y[b].scales[j] = static_cast<uint8_t>(s.sc[j] | (s.mn[j] << 4));
    int8_t u[QK_K];
    for (int i = 0; i < QK_K; ++i) u[i] = static_cast<int8_t>(s.L[i]);
    pack_quants_q2_K(u, y[b]);
  });
}

void encode_row_q4_K(const float* x, block_q4_K* y, int64_t n, const float* importance, QuantSearch search) {
  for_each_super_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    AffineSuper s;
    encode_affine_super(xb, w, 8, 32, 15, 63, search, s);
    y[b].d = s.d;
    y[b].dmin = s.dmin;
    pack_scale_min(s.sc, s.mn, y[b].scales);
    int8_t u[QK_K];
    for (int i = 0; i < QK_K; ++i) u[i] = static_cast<int8_t>(s.L[i]);
    pack_quants_q4_K(u, y[b]);
  });
}

void encode_row_q5_K(const float* x, block_q5_K* y, int64_t n, const float* importance, QuantSearch search) {
  for_each_super_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    AffineSuper s;
    encode_affine_super(xb, w, 8, 32, 31, 63, search, s);
    y[b].d = s.d;
    y[b].dmin = s.dmin;
    pack_scale_min(s.sc, s.mn, y[b].scales);
    int8_t u[QK_K];
    for (int i = 0; i < QK_K; ++i) u[i] = static_cast<int8_t>(s.L[i]);
    pack_quants_q5_K(u, y[b]);
  });
}

void encode_row_q3_K(const float* x, block_q3_K* y, int64_t n, const float* importance, QuantSearch search) {
  for_each_super_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    SymmetricSuper s;
    encode_symmetric_super(xb, w, -4, 3, -32, 31, search, s);
    y[b].d = s.d;
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    for (int j = 0; j < 16; ++j) {
      const int u = s.sc[j] + 32;
      if (j < 8)
        y[b].scales[j] = static_cast<uint8_t>(y[b].scales[j] | (u & 0x0F));
      else
        y[b].scales[j - 8] = static_cast<uint8_t>(y[b].scales[j - 8] | ((u & 0x0F) << 4));
      y[b].scales[8 + j % 4] = static_cast<uint8_t>(y[b].scales[8 + j % 4] | ((u >> 4) << (2 * (j / 4))));
    }
    int8_t u[QK_K];
    for (int i = 0; i < QK_K; ++i) u[i] = static_cast<int8_t>(s.L[i]);
    pack_quants_q3_K(u, y[b]);
  });
}

void encode_row_q6_K(const float* x, block_q6_K* y, int64_t n, const float* importance, QuantSearch search) {
  for_each_super_block(x, n, importance, [&](int64_t b, const float* xb, const float* w) {
    SymmetricSuper s;
    encode_symmetric_super(xb, w, -32, 31, -128, 127, search, s);
    y[b].d = s.d;
    for (int j = 0; j < 16; ++j) y[b].scales[j] = s.sc[j];
    int8_t u[QK_K];
    for (int i = 0; i < QK_K; ++i) u[i] = static_cast<int8_t>(s.L[i]);
    pack_quants_q6_K(u, y[b]);
  });
}

}  // namespace pocketlm
