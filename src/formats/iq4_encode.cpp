// Encoders of the non-linear 4-bit formats (layouts in iq4.h). See docs/quantization.md.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "formats/encode_weights.h"
#include "formats/float.h"
#include "formats/iq4.h"
#include "formats/rounding.h"
#include "formats/scale_search.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {
namespace {

constexpr int kLevels = 16;

void pack_indices(const float* x, float d, uint8_t qs[16]) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 16; ++j) {
    const int lo = nearest_level(x[j] * id, kIq4Levels, kLevels);
    const int hi = nearest_level(x[j + 16] * id, kIq4Levels, kLevels);
    qs[j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

}  // namespace

void encode_row_iq4_nl(const float* x, block_iq4_nl* y, int64_t n, const float* importance, QuantSearch search) {
  assert(n % QK4_NL == 0);
  const double sigma2 = mean_square(x, n);
  float w[QK4_NL];
  for (int64_t b = 0; b < n / QK4_NL; ++b) {
    const float* xb = x + QK4_NL * b;
    search_weights(xb, importance ? importance + QK4_NL * b : nullptr, QK4_NL, sigma2, w);
    const SymmetricFits f = fit_levels(xb, w, QK4_NL, kIq4Levels, kLevels, search);
    const uint16_t centre = fp16_finite(f.positive_score >= f.negative_score ? f.positive : f.negative);
    uint16_t best = centre;
    double best_err = levels_error(xb, w, QK4_NL, fp16_to_fp32(centre), kIq4Levels, kLevels);
    for (int dir = -1; dir <= 1; dir += 2) {
      const uint16_t h = fp16_step(centre, dir);
      const double err = levels_error(xb, w, QK4_NL, fp16_to_fp32(h), kIq4Levels, kLevels);
      if (err < best_err) {
        best_err = err;
        best = h;
      }
    }
    y[b].d = best;
    pack_indices(xb, fp16_to_fp32(best), y[b].qs);
  }
}

namespace {
// Best 6-bit sub-scale (ls - 32 in [-32, 31]) of each sub-block for the f16 super-scale dh; total error.
double xs_assign(const float* x, const float* w, const SymmetricFits* fits, uint16_t dh, int* sc) {
  const float d = fp16_to_fp32(dh);
  double total = 0;
  for (int ib = 0; ib < 8; ++ib) {
    int cand[4];
    int nc = 0;
    if (d != 0.0f) {
      for (double sub : {fits[ib].positive, fits[ib].negative}) {
        if (sub == 0) continue;
        const double fl = std::floor(sub / d);
        for (double c : {fl, fl + 1}) {
          const int ci = static_cast<int>(std::clamp(c, -32.0, 31.0));
          if (std::find(cand, cand + nc, ci) == cand + nc) cand[nc++] = ci;
        }
      }
    }
    if (nc == 0) cand[nc++] = 0;
    double best = HUGE_VAL;
    int bsc = 0;
    for (int a = 0; a < nc; ++a) {
      const double err =
          levels_error(x + 32 * ib, w + 32 * ib, 32, d * static_cast<float>(cand[a]), kIq4Levels, kLevels);
      if (err < best) {
        best = err;
        bsc = cand[a];
      }
    }
    total += best;
    if (sc) sc[ib] = bsc;
  }
  return total;
}
}  // namespace

void encode_row_iq4_xs(const float* x, block_iq4_xs* y, int64_t n, const float* importance, QuantSearch search) {
  assert(n % 256 == 0);
  float w[256];
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    search_weights(xb, importance ? importance + 256 * b : nullptr, 256, mean_square(xb, 256), w);
    SymmetricFits fits[8];
    double ssub[8], sw[8], smax = 0;
    for (int ib = 0; ib < 8; ++ib) {
      fits[ib] = fit_levels(xb + 32 * ib, w + 32 * ib, 32, kIq4Levels, kLevels, search);
      ssub[ib] = fits[ib].positive_score >= fits[ib].negative_score ? fits[ib].positive : fits[ib].negative;
      if (std::fabs(ssub[ib]) > std::fabs(smax)) smax = ssub[ib];
      double s = 0;
      for (int j = 0; j < 32; ++j) s += w[32 * ib + j];
      sw[ib] = s;
    }
    // Super-scale candidates as Q3_K's (kquants_encode.cpp): the largest sub-scale at either end of [-32, 31],
    // finer steps that clip it, the least-squares refit of each; then small relative steps and f16 neighbours.
    std::vector<double> cands;
    if (smax != 0) {
      for (int end : {-32, 31})
        for (double f = 1.0; f > 0.3; f -= 0.1) {
          const double c = smax * f / end;
          cands.push_back(c);
          double num = 0, den = 0;
          for (int ib = 0; ib < 8; ++ib) {
            const double q = std::clamp(std::nearbyint(ssub[ib] / c), -32.0, 31.0);
            num += sw[ib] * q * ssub[ib];
            den += sw[ib] * q * q;
          }
          if (den > 0) cands.push_back(num / den);
        }
    } else {
      cands.push_back(0.0);
    }
    uint16_t best_d = 0;
    double best = HUGE_VAL;
    auto consider = [&](uint16_t dh) {
      const double err = xs_assign(xb, w, fits, dh, nullptr);
      if (err < best) {
        best = err;
        best_d = dh;
      }
    };
    for (double c : cands) consider(fp16_finite(c));
    const double base = fp16_to_fp32(best_d);
    for (double f : {0.97, 0.98, 0.99, 1.01, 1.02, 1.03}) consider(fp16_finite(base * f));
    const uint16_t centre = best_d;
    consider(fp16_step(centre, -1));
    consider(fp16_step(centre, 1));
    int sc[8];
    xs_assign(xb, w, fits, best_d, sc);
    y[b].d = best_d;
    y[b].scales_h = 0;
    std::memset(y[b].scales_l, 0, sizeof(y[b].scales_l));
    const float d = fp16_to_fp32(best_d);
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = sc[ib] + 32;
      y[b].scales_l[ib / 2] = static_cast<uint8_t>(y[b].scales_l[ib / 2] | ((ls & 0x0F) << (4 * (ib % 2))));
      y[b].scales_h = static_cast<uint16_t>(y[b].scales_h | ((ls >> 4) << (2 * ib)));
      pack_indices(xb + 32 * ib, d * static_cast<float>(sc[ib]), y[b].qs + 16 * ib);
    }
  }
}

}  // namespace pocketlm
