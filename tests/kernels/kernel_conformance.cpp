#include "kernels/kernel_conformance.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>

#include "formats/dequantize.h"
#include "formats/float.h"
#include "formats/ggml_type.h"
#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/interleave.h"
#include "kernels/packed_acts.h"
#include "kernels/ref/activation_ref.h"
#include "kernels/ref/kv_rows.h"
#include "kernels/ref/softmax_ref.h"
#include "kernels/ref/vec_dot.h"

namespace pocketlm::kernels::testing {
namespace {

enum class Scales { Unit, Random, Zero, Max, NonFinite };

const GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                           GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                           GgmlType::Q5_K, GgmlType::Q6_K,
                           // pocketlm-only group sizes (last, so the random streams of the others stay as they were)
                           GgmlType::Q4_0_G64, GgmlType::Q4_0_G128};

const char* scales_name(Scales s) {
  switch (s) {
    case Scales::Unit: return "exact";
    case Scales::Random: return "random";
    case Scales::Zero: return "zero";
    case Scales::Max: return "max-scale";
    case Scales::NonFinite: return "nan/inf-scale";
  }
  return "?";
}

uint16_t f16_bits(float v) { return fp32_to_fp16(v); }

// The f16 scale fields of one block, by type (offsets into the block's bytes).
std::vector<size_t> scale_offsets(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return {offsetof(block_q4_0, d)};
    case GgmlType::Q4_1: return {offsetof(block_q4_1, d), offsetof(block_q4_1, m)};
    case GgmlType::Q5_0: return {offsetof(block_q5_0, d)};
    case GgmlType::Q5_1: return {offsetof(block_q5_1, d), offsetof(block_q5_1, m)};
    case GgmlType::Q8_0: return {offsetof(block_q8_0, d)};
    case GgmlType::Q2_K: return {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)};
    case GgmlType::Q3_K: return {offsetof(block_q3_K, d)};
    case GgmlType::Q4_K: return {offsetof(block_q4_K, d), offsetof(block_q4_K, dmin)};
    case GgmlType::Q5_K: return {offsetof(block_q5_K, d), offsetof(block_q5_K, dmin)};
    case GgmlType::Q6_K: return {offsetof(block_q6_K, d)};
    case GgmlType::Q4_0_G64: return {offsetof(block_q4_0_g64, d)};
    case GgmlType::Q4_0_G128: return {offsetof(block_q4_0_g128, d)};
    default: return {};
  }
}

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Weight rows: random quant bytes, then every scale field set by `mode`. Float types get values.
std::vector<uint8_t> make_weights(GgmlType t, int64_t k, int64_t rows, Scales mode, std::mt19937& rng) {
  const size_t rs = row_size(t, k);
  std::vector<uint8_t> w(rs * static_cast<size_t>(rows));
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-3, 3);
  if (is_float_type(t)) {
    const size_t n = static_cast<size_t>(k * rows);
    for (size_t i = 0; i < n; ++i) {
      float v = mode == Scales::Unit ? static_cast<float>(small(rng)) : normal(rng);
      if (mode == Scales::Zero) v = 0.0f;
      if (mode == Scales::Max) v = (i % 2 ? -60000.0f : 60000.0f) * (t == GgmlType::F16 ? 1.0f : 1.0f);
      if (mode == Scales::NonFinite && i % 97 == 3) v = (i % 2) ? NAN : INFINITY;
      if (t == GgmlType::F32)
        std::memcpy(w.data() + 4 * i, &v, 4);
      else {
        const uint16_t h = t == GgmlType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
    }
    return w;
  }
  for (auto& b : w) b = static_cast<uint8_t>(mode == Scales::Zero ? 0 : byte(rng));
  const auto& tr = type_traits(t);
  const size_t n_blocks = w.size() / tr.type_size;
  std::uniform_real_distribution<float> mag(1e-4f, 2e-2f);
  for (size_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = w.data() + b * tr.type_size;
    const std::vector<size_t> offs = scale_offsets(t);
    for (size_t i = 0; i < offs.size(); ++i) {
      float v = 0.0f;
      switch (mode) {
        case Scales::Unit: v = 1.0f; break;
        case Scales::Random: v = mag(rng) * (i == 0 || byte(rng) < 200 ? 1.0f : -1.0f); break;
        case Scales::Zero: v = 0.0f; break;
        case Scales::Max: v = 65504.0f; break;
        case Scales::NonFinite: v = (b % 3 == 1) ? (b % 2 ? NAN : INFINITY) : mag(rng); break;
      }
      const uint16_t h = f16_bits(v);
      std::memcpy(blk + offs[i], &h, 2);
    }
  }
  return w;
}

// Activation rows in vec_dot_type(t). Exact mode builds q8 blocks with d = 1 and quants in [-8, 8] directly.
std::vector<uint8_t> make_activations(GgmlType t, int64_t k, int64_t cols, Scales mode, std::mt19937& rng) {
  const GgmlType at = vec_dot_type(t);
  const size_t rs = activation_row_size(t, k);
  std::vector<uint8_t> a(rs * static_cast<size_t>(cols));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-8, 8);
  std::vector<float> x(static_cast<size_t>(k));
  for (int64_t c = 0; c < cols; ++c) {
    uint8_t* row = a.data() + static_cast<size_t>(c) * rs;
    if (mode == Scales::Unit && !is_float_type(t)) {
      if (at == GgmlType::Q8_K) {
        auto* blk = reinterpret_cast<block_q8_K*>(row);
        for (int64_t b = 0; b < k / QK_K; ++b) {
          blk[b].d = 1.0f;
          for (int j = 0; j < QK_K; ++j) blk[b].qs[j] = static_cast<int8_t>(small(rng));
          for (int g = 0; g < QK_K / 16; ++g) {
            int s = 0;
            for (int j = 0; j < 16; ++j) s += blk[b].qs[16 * g + j];
            blk[b].bsums[g] = static_cast<int16_t>(s);
          }
        }
      } else {
        const bool q81 = at == GgmlType::Q8_1;
        const size_t bs = q81 ? sizeof(block_q8_1) : sizeof(block_q8_0);
        for (int64_t b = 0; b < k / 32; ++b) {
          uint8_t* blk = row + static_cast<size_t>(b) * bs;
          int8_t* qs = reinterpret_cast<int8_t*>(blk + (q81 ? 4 : 2));
          int s = 0;
          for (int j = 0; j < 32; ++j) s += (qs[j] = static_cast<int8_t>(small(rng)));
          const uint16_t one = f16_bits(1.0f), sum = f16_bits(static_cast<float>(s));
          std::memcpy(blk, &one, 2);
          if (q81) std::memcpy(blk + 2, &sum, 2);
        }
      }
      continue;
    }
    for (auto& v : x) v = mode == Scales::Unit ? static_cast<float>(small(rng)) : normal(rng);
    quantize_activations(at, x.data(), row, k);
  }
  return a;
}

// Sum of |w_i * a_i| over a row pair, from dequantized values: the scale of the float rounding error.
double magnitude(GgmlType t, int64_t k, const uint8_t* w, const uint8_t* a) {
  std::vector<float> wf(static_cast<size_t>(k)), af(static_cast<size_t>(k));
  dequantize_row(t, w, wf.data(), k);
  dequantize_row(vec_dot_type(t), a, af.data(), k);
  double m = 0;
  for (int64_t i = 0; i < k; ++i) m += std::fabs(static_cast<double>(wf[i]) * af[i]);
  return m;
}

// One GEMM case against the scalar GEMM. `packed`: the path's packed GEMM (kernels/packed_acts.h) on the same
// activation rows packed into 16-column groups. The output has a leading dimension wider than the row count
// and one spare column, to catch writes outside the tile (and into a packed group's padding).
enum class Kernel { Rows, Packed, X16 };

void check_case(const KernelTable& path, GgmlType t, int64_t k, int64_t rows, int64_t cols, Scales mode,
                std::mt19937& rng, ConformanceReport& rep, Kernel kind = Kernel::Rows) {
  const bool packed = kind == Kernel::Packed;
  const GemmFn simd = packed ? path.find_packed(t) : path.find(t);
  const GemvX16Fn x16 = path.find_x16(t);
  const GemmX16Fn x16_batch = path.find_gemm_x16(t);
  const GemmFn ref = scalar_table()->find(t);
  if ((kind == Kernel::X16 ? (cols == 1 ? x16 == nullptr : x16_batch == nullptr) : simd == nullptr) || ref == nullptr)
    return;
  const std::vector<uint8_t> w = make_weights(t, k, rows, mode, rng);
  const std::vector<uint8_t> a = make_activations(t, k, cols, mode, rng);
  const size_t ws = row_size(t, k), as = activation_row_size(t, k);
  const int64_t ldo = rows + 3;
  std::vector<float> got(static_cast<size_t>(ldo * (cols + 1)), -777.0f), want(got.size(), -777.0f);
  if (kind == Kernel::X16) {  // rows a multiple of 16, interleaved as the model does at load
    std::vector<uint8_t> wx(w.size());
    for (int64_t g = 0; g < rows / kX16Rows; ++g)
      interleave_x16(t, w.data() + ws * kX16Rows * g, ws, k, wx.data() + ws * kX16Rows * g);
    if (cols == 1)
      x16(k, wx.data(), ws * kX16Rows, rows / kX16Rows, a.data(), got.data());
    else
      x16_batch(k, wx.data(), ws * kX16Rows, rows / kX16Rows, a.data(), as, cols, got.data(), ldo);
  } else if (packed) {
    const GgmlType at = vec_dot_type(t);
    const size_t gs = packed_group_bytes(at, k);
    std::vector<uint8_t> pa(gs * static_cast<size_t>(packed_groups(cols)));
    for (int64_t g = 0; g < packed_groups(cols); ++g)
      pack_activation_group(at, a.data(), as, k, cols, g, pa.data() + gs * g);
    simd(k, w.data(), ws, rows, pa.data(), gs, cols, got.data(), ldo);
  } else {
    simd(k, w.data(), ws, rows, a.data(), as, cols, got.data(), ldo);
  }
  ref(k, w.data(), ws, rows, a.data(), as, cols, want.data(), ldo);
  for (int64_t c = 0; c <= cols; ++c) {
    for (int64_t r = 0; r < ldo; ++r) {
      const float g = got[static_cast<size_t>(c * ldo + r)], e = want[static_cast<size_t>(c * ldo + r)];
      ++rep.checks;
      bool ok;
      if (r >= rows || c == cols)
        ok = g == -777.0f;  // padding untouched
      else if (mode == Scales::Unit || mode == Scales::Zero)
        ok = g == e;
      else if (!std::isfinite(e))
        ok = !std::isfinite(g);
      else {
        const double mag =
            magnitude(t, k, w.data() + static_cast<size_t>(r) * ws, a.data() + static_cast<size_t>(c) * as);
        ok = std::isfinite(g) && std::fabs(static_cast<double>(g) - e) <= kRelTolerance * mag + 1e-30;
      }
      if (!ok && rep.failures.size() < 20) {
        std::ostringstream os;
        os << path.name
           << (packed                ? " packed "
               : kind == Kernel::X16 ? " x16 "
                                     : " ")
           << type_traits(t).name << " " << scales_name(mode) << " k=" << k << " rows=" << rows << " cols=" << cols
           << " at (row " << r << ", col " << c << "): got " << g << ", reference " << e;
        rep.failures.push_back(os.str());
      }
    }
  }
}

// Attention's softmax (ScaledSoftmaxFn) against the scalar oracle: lengths around the 8- and 16-lane steps,
// spreads that reach the exp clamp, with and without the f16 rounding of P, and non-finite scores.
void check_softmax(const KernelTable& path, std::mt19937& rng, ConformanceReport& rep) {
  if (path.scaled_softmax == nullptr) return;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto report = [&](const std::string& what, int64_t n, int64_t i, float g, float e) {
    if (rep.failures.size() >= 20) return;
    std::ostringstream os;
    os << path.name << " softmax " << what << " n=" << n << " at " << i << ": got " << g << ", reference " << e;
    rep.failures.push_back(os.str());
  };
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 33, 100, 257, 1000, 4099}) {
    for (float spread : {1.0f, 8.0f, 60.0f}) {
      for (bool f16 : {false, true}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = normal(rng) * spread;
        std::vector<float> got = x, want = x;
        const float scale = 0.125f;
        path.scaled_softmax(got.data(), n, scale, f16);
        ref::scaled_softmax(want.data(), n, scale, f16);
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const float g = got[static_cast<size_t>(i)], e = want[static_cast<size_t>(i)];
          sum += g;
          ++rep.checks;
          // 4e-6 relative (a polynomial exp and float lane sums against libm and one double sum), plus one f16
          // step where P is rounded to f16 (a difference that small can cross a rounding boundary): 2^-10
          // relative, or 2^-24 among f16's subnormals (below 2^-14).
          const double f16_step = std::max(std::fabs(e) / 1024.0, 0x1p-24);
          const double tol = 4e-6 * std::fabs(e) + (f16 ? f16_step : 0.0) + 1e-30;
          if (!(std::fabs(static_cast<double>(g) - e) <= tol))
            report(std::string(f16 ? "f16" : "f32") + " spread " + std::to_string(spread), n, i, g, e);
        }
        ++rep.checks;
        if (!(std::fabs(sum - 1.0) <= (f16 ? 1e-3 * static_cast<double>(n) : 1e-5)))
          report("sum " + std::to_string(sum), n, -1, 0.0f, 1.0f);
      }
    }
  }
  // The polynomial exp against std::exp (in double) over its whole range, 2^18 points of [-80, 0], through the
  // vector lanes: a row of 16 scores whose maximum is an exact 0 gives P[0] = 1 / sum and P[i] = e^x[i] / sum,
  // so P[i] / P[0] is the kernel's e^x[i] times (1 ± 2^-24). Below -80, e^x / sum would be subnormal.
  // Bound: 3 x 2^-24 relative (the polynomial and the ratio); measured 1.52e-7 (2.55 x 2^-24) on AVX2 and AVX-512.
  double worst = 0.0;
  float worst_x = 0.0f;
  constexpr int kSweep = 1 << 18;
  for (int i = 0; i < kSweep; i += 15) {
    std::vector<float> row(16, 0.0f);
    for (int j = 1; j < 16; ++j) row[static_cast<size_t>(j)] = -80.0f * static_cast<float>(i + j - 1) / kSweep;
    const std::vector<float> x = row;
    path.scaled_softmax(row.data(), 16, 1.0f, false);
    for (int j = 1; j < 16; ++j) {
      ++rep.checks;
      const double want = std::exp(static_cast<double>(x[static_cast<size_t>(j)]));
      const double got = static_cast<double>(row[static_cast<size_t>(j)]) / static_cast<double>(row[0]);
      const double err = std::fabs(got - want) / want;
      if (err > worst) worst = err, worst_x = x[static_cast<size_t>(j)];
    }
  }
  if (!(worst <= 3.0 * 0x1p-24)) {
    std::ostringstream os;
    os << "exp relative error " << worst << " at x = " << worst_x;
    report(os.str(), 16, -1, 0.0f, 0.0f);
  }
  // Non-finite scores propagate as in the oracle: a NaN or an infinity makes the row NaN.
  for (int64_t n : {5, 24}) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = normal(rng);
      x[static_cast<size_t>(n / 2)] = bad;
      std::vector<float> got = x, want = x;
      path.scaled_softmax(got.data(), n, 0.5f, false);
      ref::scaled_softmax(want.data(), n, 0.5f, false);
      for (int64_t i = 0; i < n; ++i) {
        ++rep.checks;
        const float g = got[static_cast<size_t>(i)], e = want[static_cast<size_t>(i)];
        if (!(std::isnan(e) ? std::isnan(g) : g == e)) report("non-finite", n, i, g, e);
      }
    }
  }
}

// The outlier branch's side product (OutlierGemmFn) against the scalar path's: K around the 8-lane step, 1..9
// columns (each column's bits must not depend on the others), outputs accumulated onto what is there.
void check_outlier_gemm(const KernelTable& path, std::mt19937& rng, ConformanceReport& rep) {
  if (path.outlier_gemm == nullptr) return;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t k : {1, 7, 8, 9, 32, 64, 70}) {
    for (int64_t cols : {1, 3, 9}) {
      const int64_t rows = 13;
      std::vector<uint16_t> w(static_cast<size_t>(rows * k));
      for (auto& h : w) h = fp32_to_fp16(normal(rng));
      std::vector<float> x(static_cast<size_t>(cols * k)), got(static_cast<size_t>(rows * cols)), want, one(got);
      for (float& v : x) v = normal(rng) * 10.0f;
      for (float& v : got) v = normal(rng);
      want = got;
      one = got;
      path.outlier_gemm(k, w.data(), rows, x.data(), cols, got.data(), rows);
      scalar_table()->outlier_gemm(k, w.data(), rows, x.data(), cols, want.data(), rows);
      for (int64_t c = 0; c < cols; ++c)
        path.outlier_gemm(k, w.data(), rows, x.data() + c * k, 1, one.data() + c * rows, rows);
      for (size_t i = 0; i < got.size(); ++i) {
        const int64_t r = static_cast<int64_t>(i) % rows, c = static_cast<int64_t>(i) / rows;
        double mag = std::fabs(static_cast<double>(want[i]));
        for (int64_t j = 0; j < k; ++j)
          mag += std::fabs(static_cast<double>(fp16_to_fp32(w[static_cast<size_t>(r * k + j)])) *
                           x[static_cast<size_t>(c * k + j)]);
        rep.checks += 2;
        const bool close = std::fabs(static_cast<double>(got[i]) - want[i]) <= kRelTolerance * mag + 1e-30;
        const bool same = std::memcmp(&got[i], &one[i], sizeof(float)) == 0;
        if ((!close || !same) && rep.failures.size() < 20) {
          std::ostringstream os;
          os << path.name << " outlier_gemm k=" << k << " cols=" << cols << " at (row " << r << ", col " << c
             << "): got " << got[i] << ", reference " << want[i] << ", alone " << one[i];
          rep.failures.push_back(os.str());
        }
      }
    }
  }
}

// Column invariance (what speculative decoding's greedy identity rests on, kernels/matmul.h): each column of a
// multi-column product has the bits of that column computed alone. gemm[] for a type without a separate
// one-column kernel (KernelTable::batch_variant), and gemm_x16 against gemv_x16 where a path has both.
void check_column_invariance(const KernelTable& path, GgmlType t, int64_t k, int64_t rows, int64_t cols,
                             std::mt19937& rng, ConformanceReport& rep, bool x16) {
  const std::vector<uint8_t> w = make_weights(t, k, rows, Scales::Random, rng);
  const std::vector<uint8_t> a = make_activations(t, k, cols, Scales::Random, rng);
  const size_t ws = row_size(t, k), as = activation_row_size(t, k);
  std::vector<uint8_t> wx = w;
  if (x16)
    for (int64_t g = 0; g < rows / kX16Rows; ++g)
      interleave_x16(t, w.data() + ws * kX16Rows * g, ws, k, wx.data() + ws * kX16Rows * g);
  std::vector<float> many(static_cast<size_t>(rows * cols)), one(static_cast<size_t>(rows));
  if (x16)
    path.find_gemm_x16(t)(k, wx.data(), ws * kX16Rows, rows / kX16Rows, a.data(), as, cols, many.data(), rows);
  else
    path.find(t)(k, w.data(), ws, rows, a.data(), as, cols, many.data(), rows);
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* ac = a.data() + static_cast<size_t>(c) * as;
    if (x16)
      path.find_x16(t)(k, wx.data(), ws * kX16Rows, rows / kX16Rows, ac, one.data());
    else
      path.find(t)(k, w.data(), ws, rows, ac, as, 1, one.data(), rows);
    for (int64_t r = 0; r < rows; ++r) {
      ++rep.checks;
      const float g = many[static_cast<size_t>(c * rows + r)], e = one[static_cast<size_t>(r)];
      if (std::memcmp(&g, &e, sizeof g) != 0 && rep.failures.size() < 20) {
        std::ostringstream os;
        os << path.name << (x16 ? " x16 " : " ") << type_traits(t).name << " k=" << k << " rows=" << rows
           << " cols=" << cols << ": column " << c << " row " << r << " is " << g << " in the batch but " << e
           << " alone (the batch must not change a column's bits)";
        rep.failures.push_back(os.str());
      }
    }
  }
}

// Weighted rows (attention's P.V): f32 and f16 rows, zero weights (masked positions) included.
void check_weighted_rows(const KernelTable& path, bool f16, int64_t n_rows, int64_t dim, int64_t n_cols,
                         std::mt19937& rng, ConformanceReport& rep) {
  const WeightedRowsFn simd = f16 ? path.weighted_rows_f16 : path.weighted_rows_f32;
  const WeightedRowsFn ref = f16 ? scalar_table()->weighted_rows_f16 : scalar_table()->weighted_rows_f32;
  if (simd == nullptr) return;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t es = f16 ? 2 : 4, v_stride = static_cast<size_t>(dim + 8) * es;  // padded rows
  std::vector<uint8_t> v(v_stride * static_cast<size_t>(n_rows));
  std::vector<float> mag(static_cast<size_t>(n_rows * dim));
  for (int64_t j = 0; j < n_rows; ++j)
    for (int64_t i = 0; i < dim; ++i) {
      const float x = normal(rng);
      uint8_t* at = v.data() + static_cast<size_t>(j) * v_stride + static_cast<size_t>(i) * es;
      if (f16) {
        const uint16_t h = fp32_to_fp16(x);
        std::memcpy(at, &h, 2);
        mag[static_cast<size_t>(j * dim + i)] = std::fabs(fp16_to_fp32(h));
      } else {
        std::memcpy(at, &x, 4);
        mag[static_cast<size_t>(j * dim + i)] = std::fabs(x);
      }
    }
  const size_t p_stride = static_cast<size_t>(n_rows + 1), out_stride = static_cast<size_t>(dim + 4);
  std::vector<float> p(p_stride * static_cast<size_t>(n_cols));
  for (size_t i = 0; i < p.size(); ++i) p[i] = (i % 5 == 2) ? 0.0f : std::fabs(normal(rng));
  std::vector<float> got(out_stride * static_cast<size_t>(n_cols)), want(got.size());
  for (size_t i = 0; i < got.size(); ++i) got[i] = want[i] = normal(rng);
  simd(n_rows, dim, v.data(), v_stride, p.data(), p_stride, n_cols, got.data(), out_stride);
  ref(n_rows, dim, v.data(), v_stride, p.data(), p_stride, n_cols, want.data(), out_stride);
  for (int64_t c = 0; c < n_cols; ++c)
    for (int64_t i = 0; i < static_cast<int64_t>(out_stride); ++i) {
      const size_t at = static_cast<size_t>(c) * out_stride + static_cast<size_t>(i);
      double m = 1.0;
      if (i < dim)
        for (int64_t j = 0; j < n_rows; ++j)
          m += p[static_cast<size_t>(c) * p_stride + static_cast<size_t>(j)] * mag[static_cast<size_t>(j * dim + i)];
      ++rep.checks;
      const bool ok =
          i < dim ? std::fabs(static_cast<double>(got[at]) - want[at]) <= kRelTolerance * m : got[at] == want[at];
      if (!ok && rep.failures.size() < 20) {
        std::ostringstream os;
        os << path.name << " weighted_rows_" << (f16 ? "f16" : "f32") << " rows=" << n_rows << " dim=" << dim
           << " cols=" << n_cols << " at (col " << c << ", " << i << "): got " << got[at] << ", reference " << want[at];
        rep.failures.push_back(os.str());
      }
    }
}

// Activation quantizers: bytes identical to their scalar oracle (ref/activation_ref.h), including rounding ties (x * id
// exactly k + 0.5), all-zero blocks, huge and denormal values.
void check_quantize(const KernelTable& path, GgmlType at, std::mt19937& rng, ConformanceReport& rep) {
  const QuantizeFn simd = path.find_quantize(at);
  if (simd == nullptr) return;
  const int64_t n = 1024;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> half(-126, 126);
  for (int variant = 0; variant < 5; ++variant) {
    std::vector<float> x(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); ++i) {
      switch (variant) {
        case 0: x[i] = normal(rng); break;
        case 1: x[i] = (i % 32 == 0) ? 127.0f : static_cast<float>(half(rng)) + 0.5f; break;  // ties when d = 1
        case 2: x[i] = (i / 256) % 2 ? 0.0f : normal(rng) * 3e4f; break;                      // zero blocks, huge
        case 3: x[i] = normal(rng) * 1e-39f; break;                                           // denormals
        default: x[i] = (i % 7 == 0) ? -normal(rng) * 50.0f : normal(rng); break;
      }
    }
    const size_t bytes = row_size(at, n);
    std::vector<uint8_t> got(bytes, 0xAB), want(bytes, 0xCD);
    simd(x.data(), got.data(), n);
    ref::quantize_activations_simd_semantics(at, x.data(), want.data(), n);
    ++rep.checks;
    if (got != want && rep.failures.size() < 20) {
      size_t i = 0;
      while (got[i] == want[i]) ++i;
      std::ostringstream os;
      os << path.name << " quantize " << type_traits(at).name << " variant " << variant << ": byte " << i
         << " differs (" << int(got[i]) << " vs reference " << int(want[i]) << ")";
      rep.failures.push_back(os.str());
    }
  }
}

// ---------------------------------------------------------------- quantized KV rows (ref/kv_rows.h)
enum class KvFill { Quantized, RawBytes, Zero, MaxScale, NonFinite };

const char* kv_fill_name(KvFill f) {
  switch (f) {
    case KvFill::Quantized: return "quantized";
    case KvFill::RawBytes: return "raw-bytes";
    case KvFill::Zero: return "zero";
    case KvFill::MaxScale: return "max-scale";
    case KvFill::NonFinite: return "nan/inf-scale";
  }
  return "?";
}

KvType kv_type_of(KvRow r) { return r == kKvRowQ8 ? KvType::Q8 : KvType::Q4; }

// n rows of `t` (stride kv_row_bytes + 5, so rows are unaligned and padded): quantized N(0, sigma) floats
// with a random sigma per row, or raw quant bytes (q8 in [-127, 127], any nibbles) under a random, the
// largest or a non-finite f16 scale.
std::vector<uint8_t> make_kv_rows(KvType t, int64_t hd, int64_t n, size_t stride, KvFill fill, std::mt19937& rng) {
  std::vector<uint8_t> rows(stride * static_cast<size_t>(n), 0x5A);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_sigma(-3.0f, 1.0f);
  std::uniform_int_distribution<int> q8(-127, 127), byte(0, 255);
  std::vector<float> x(static_cast<size_t>(hd));
  const size_t rb = kv_row_bytes(t, hd);
  for (int64_t j = 0; j < n; ++j) {
    uint8_t* row = rows.data() + static_cast<size_t>(j) * stride;
    if (fill == KvFill::Quantized || fill == KvFill::Zero) {
      const float sigma = std::pow(10.0f, log_sigma(rng));
      for (auto& v : x) v = fill == KvFill::Zero ? 0.0f : sigma * normal(rng);
      ref::quantize_kv_row(t, x.data(), row, hd);
      continue;
    }
    for (size_t i = 2; i < rb; ++i)
      row[i] = static_cast<uint8_t>(t == KvType::Q8 ? static_cast<uint8_t>(static_cast<int8_t>(q8(rng))) : byte(rng));
    float d = std::pow(10.0f, log_sigma(rng)) * 0.01f;
    if (fill == KvFill::MaxScale) d = j % 2 ? -65504.0f : 65504.0f;
    if (fill == KvFill::NonFinite && j % 3 == 1) d = j % 2 ? NAN : -INFINITY;
    const uint16_t h = fp32_to_fp16(d);
    std::memcpy(row, &h, 2);
  }
  return rows;
}

// K . Q: the path's scores must equal the reference's bit for bit (NaN where it is NaN).
void check_kv_gemm(const KernelTable& path, KvRow kr, int64_t hd, int64_t rows, int64_t cols, KvFill fill,
                   std::mt19937& rng, ConformanceReport& rep) {
  const GemmFn simd = path.kv_gemm[kr];
  const GemmFn ref = scalar_table()->kv_gemm[kr];
  if (simd == nullptr) return;
  const KvType t = kv_type_of(kr);
  const size_t ks = kv_row_bytes(t, hd) + 5, qs = kv_row_bytes(KvType::Q8, hd) + 3;
  const std::vector<uint8_t> k = make_kv_rows(t, hd, rows, ks, fill, rng);
  const std::vector<uint8_t> q =
      make_kv_rows(KvType::Q8, hd, cols, qs, fill == KvFill::RawBytes ? KvFill::RawBytes : KvFill::Quantized, rng);
  const int64_t ldo = rows + 3;
  std::vector<float> got(static_cast<size_t>(ldo * cols), -777.0f), want(got.size(), -777.0f);
  simd(hd, k.data(), ks, rows, q.data(), qs, cols, got.data(), ldo);
  ref(hd, k.data(), ks, rows, q.data(), qs, cols, want.data(), ldo);
  for (size_t i = 0; i < got.size(); ++i) {
    ++rep.checks;
    const bool ok = std::memcmp(&got[i], &want[i], 4) == 0 || (std::isnan(got[i]) && std::isnan(want[i]));
    if (!ok && rep.failures.size() < 20) {
      std::ostringstream os;
      os << path.name << " kv_gemm " << kv_type_name(t) << " " << kv_fill_name(fill) << " head_dim=" << hd
         << " rows=" << rows << " cols=" << cols << " at (row " << static_cast<int64_t>(i) % ldo << ", col "
         << static_cast<int64_t>(i) / ldo << "): got " << got[i] << ", reference " << want[i] << " (must be equal)";
      rep.failures.push_back(os.str());
    }
  }
}

// P . V: within kRelTolerance of sum_j p_j |v_j[i]| (the paths use an FMA per term, the reference a
// multiply and an add); outputs outside [0, dim) untouched.
void check_kv_weighted_rows(const KernelTable& path, KvRow kr, int64_t n_rows, int64_t dim, int64_t n_cols,
                            std::mt19937& rng, ConformanceReport& rep) {
  const WeightedRowsFn simd = path.kv_weighted_rows[kr];
  const WeightedRowsFn ref = scalar_table()->kv_weighted_rows[kr];
  if (simd == nullptr) return;
  const KvType t = kv_type_of(kr);
  const size_t vs = kv_row_bytes(t, dim) + 7;
  const std::vector<uint8_t> v = make_kv_rows(t, dim, n_rows, vs, KvFill::Quantized, rng);
  std::vector<float> mag(static_cast<size_t>(n_rows * dim));
  for (int64_t j = 0; j < n_rows; ++j) {
    ref::dequantize_kv_row(t, v.data() + static_cast<size_t>(j) * vs, mag.data() + j * dim, dim);
    for (int64_t i = 0; i < dim; ++i)
      mag[static_cast<size_t>(j * dim + i)] = std::fabs(mag[static_cast<size_t>(j * dim + i)]);
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t p_stride = static_cast<size_t>(n_rows + 1), out_stride = static_cast<size_t>(dim + 4);
  std::vector<float> p(p_stride * static_cast<size_t>(n_cols));
  for (size_t i = 0; i < p.size(); ++i) p[i] = (i % 5 == 2) ? 0.0f : std::fabs(normal(rng));
  std::vector<float> got(out_stride * static_cast<size_t>(n_cols)), want(got.size());
  for (size_t i = 0; i < got.size(); ++i) got[i] = want[i] = normal(rng);
  simd(n_rows, dim, v.data(), vs, p.data(), p_stride, n_cols, got.data(), out_stride);
  ref(n_rows, dim, v.data(), vs, p.data(), p_stride, n_cols, want.data(), out_stride);
  for (int64_t c = 0; c < n_cols; ++c)
    for (int64_t i = 0; i < static_cast<int64_t>(out_stride); ++i) {
      const size_t at = static_cast<size_t>(c) * out_stride + static_cast<size_t>(i);
      double m = 1.0;
      if (i < dim)
        for (int64_t j = 0; j < n_rows; ++j)
          m += p[static_cast<size_t>(c) * p_stride + static_cast<size_t>(j)] * mag[static_cast<size_t>(j * dim + i)];
      ++rep.checks;
      const bool ok =
          i < dim ? std::fabs(static_cast<double>(got[at]) - want[at]) <= kRelTolerance * m : got[at] == want[at];
      if (!ok && rep.failures.size() < 20) {
        std::ostringstream os;
        os << path.name << " kv_weighted_rows " << kv_type_name(t) << " rows=" << n_rows << " dim=" << dim
           << " cols=" << n_cols << " at (col " << c << ", " << i << "): got " << got[at] << ", reference " << want[at];
        rep.failures.push_back(os.str());
      }
    }
}

}  // namespace

ConformanceReport check_kv_rows(const KernelTable& path, unsigned seed) {
  ConformanceReport rep;
  std::mt19937 rng(seed);
  for (KvRow kr : {kKvRowQ8, kKvRowQ4}) {
    // Shapes: odd rows/cols around the tiles (rows x queries), head_dim 32 .. 256; q8 also 80 (a 16-value
    // tail after the 32-chunks) and 8.
    const int64_t shapes[][3] = {{64, 1, 1},   {64, 13, 9}, {128, 7, 3}, {128, 33, 4}, {256, 5, 5},
                                 {256, 16, 1}, {32, 3, 2},  {96, 9, 7},  {128, 2, 70}};
    for (const auto& s : shapes) check_kv_gemm(path, kr, s[0], s[1], s[2], KvFill::Quantized, rng, rep);
    if (kr == kKvRowQ8) {
      check_kv_gemm(path, kr, 80, 9, 3, KvFill::Quantized, rng, rep);
      check_kv_gemm(path, kr, 8, 5, 2, KvFill::RawBytes, rng, rep);
    }
    for (KvFill f : {KvFill::RawBytes, KvFill::Zero, KvFill::MaxScale, KvFill::NonFinite})
      check_kv_gemm(path, kr, 128, 11, 5, f, rng, rep);
    const int64_t wshapes[][3] = {{1, 32, 1}, {7, 64, 3}, {33, 128, 5}, {100, 96, 9}, {5, 256, 4}, {300, 64, 3}};
    for (const auto& s : wshapes) check_kv_weighted_rows(path, kr, s[0], s[1], s[2], rng, rep);
    if (kr == kKvRowQ8) check_kv_weighted_rows(path, kr, 9, 72, 2, rng, rep);  // not whole 32-groups
  }
  return rep;
}

ConformanceReport check_path(const KernelTable& path, unsigned seed) {
  ConformanceReport rep;
  std::mt19937 rng(seed);
  for (GgmlType t : kTypes) {
    const int64_t blk = type_traits(t).block_size == 1 ? 32 : type_traits(t).block_size;
    // Shapes: odd rows/cols around the tile sizes, one block to many.
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 5, 1}, {2, 7, 3}, {3, 13, 9}, {8, 4, 4}, {16, 9, 2}, {4, 1, 7},
                                 {5, 9, 1}, {3, 4, 1}, {4, 5, 1}, {6, 3, 1},  {2, 8, 1}};  // (one column: decode)
    for (const auto& s : shapes) check_case(path, t, blk * s[0], s[1], s[2], Scales::Random, rng, rep);
    if (is_float_type(t)) check_case(path, t, 100, 5, 3, Scales::Random, rng, rep);  // k not a multiple of 32
    check_case(path, t, blk * 2, 6, 5, Scales::Unit, rng, rep);
    check_case(path, t, blk * 3, 7, 1, Scales::Unit, rng, rep);
    check_case(path, t, blk * 4, 6, 1, Scales::Unit, rng, rep);
    check_case(path, t, blk * 3, 5, 3, Scales::Zero, rng, rep);
    check_case(path, t, blk * 2, 5, 3, Scales::Max, rng, rep);
    check_case(path, t, blk * 4, 7, 3, Scales::NonFinite, rng, rep);
    check_case(path, t, blk * 2, 6, 1, Scales::Max, rng, rep);
    check_case(path, t, blk * 4, 5, 1, Scales::NonFinite, rng, rep);
  }
  for (GgmlType at : {GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K}) check_quantize(path, at, rng, rep);
  // Packed GEMMs (prefill): columns around the 16-column groups, rows around the tile.
  for (GgmlType t : kTypes) {
    if (path.find_packed(t) == nullptr) continue;
    const int64_t blk = type_traits(t).block_size;
    const int64_t shapes[][3] = {{1, 1, 1}, {2, 5, 16}, {3, 4, 17}, {1, 9, 33}, {4, 17, 15}, {2, 3, 48}};
    for (const auto& s : shapes) check_case(path, t, blk * s[0], s[1], s[2], Scales::Random, rng, rep, Kernel::Packed);
    check_case(path, t, blk * 2, 6, 19, Scales::Unit, rng, rep, Kernel::Packed);
    check_case(path, t, blk * 3, 5, 16, Scales::Zero, rng, rep, Kernel::Packed);
    check_case(path, t, blk * 2, 5, 18, Scales::Max, rng, rep, Kernel::Packed);
    check_case(path, t, blk * 4, 7, 20, Scales::NonFinite, rng, rep, Kernel::Packed);
  }
  // Decode GEMVs and batch GEMMs over row-interleaved groups (kernels/interleave.h): 1..3 groups, one block to
  // many, 1..11 columns (the batch kernels take 4 at a time).
  for (GgmlType t : kTypes) {
    if (path.find_gemm_x16(t) == nullptr) continue;
    const int64_t blk = type_traits(t).block_size;
    const int64_t shapes[][3] = {{1, 16, 2}, {2, 32, 4}, {3, 16, 5}, {4, 48, 11}, {2, 16, 7}};
    for (const auto& s : shapes) check_case(path, t, blk * s[0], s[1], s[2], Scales::Random, rng, rep, Kernel::X16);
    check_case(path, t, blk * 2, 32, 6, Scales::Unit, rng, rep, Kernel::X16);
    check_case(path, t, blk * 2, 16, 3, Scales::Zero, rng, rep, Kernel::X16);
    check_case(path, t, blk * 2, 16, 4, Scales::Max, rng, rep, Kernel::X16);
    check_case(path, t, blk * 3, 32, 9, Scales::NonFinite, rng, rep, Kernel::X16);
  }
  for (GgmlType t : kTypes) {
    if (path.find_x16(t) == nullptr) continue;
    const int64_t blk = type_traits(t).block_size;
    const int64_t shapes[][2] = {{1, 16}, {2, 32}, {3, 16}, {8, 48}, {5, 16}};
    for (const auto& s : shapes) check_case(path, t, blk * s[0], s[1], 1, Scales::Random, rng, rep, Kernel::X16);
    check_case(path, t, blk * 3, 16, 1, Scales::Unit, rng, rep, Kernel::X16);
    check_case(path, t, blk * 2, 32, 1, Scales::Unit, rng, rep, Kernel::X16);
    check_case(path, t, blk * 2, 16, 1, Scales::Zero, rng, rep, Kernel::X16);
    check_case(path, t, blk * 2, 16, 1, Scales::Max, rng, rep, Kernel::X16);
    check_case(path, t, blk * 4, 32, 1, Scales::NonFinite, rng, rep, Kernel::X16);
  }
  check_softmax(path, rng, rep);
  check_outlier_gemm(path, rng, rep);
  // Column invariance: batches of 2..9 columns against each column alone.
  for (GgmlType t : kTypes) {
    const int64_t blk = type_traits(t).block_size == 1 ? 32 : type_traits(t).block_size;
    if (path.find(t) != nullptr && !path.is_batch_variant(t))
      for (int64_t cols : {2, 3, 5, 9}) check_column_invariance(path, t, blk * 4, 13, cols, rng, rep, false);
    if (path.find_x16(t) != nullptr && path.find_gemm_x16(t) != nullptr)
      for (int64_t cols : {2, 3, 5, 9}) check_column_invariance(path, t, blk * 4, 32, cols, rng, rep, true);
  }
  for (bool f16 : {false, true}) {
    const int64_t shapes[][3] = {{1, 8, 1}, {7, 64, 3}, {33, 128, 5}, {100, 72, 9}, {5, 256, 4}};
    for (const auto& s : shapes) check_weighted_rows(path, f16, s[0], s[1], s[2], rng, rep);
  }
  const ConformanceReport kv = check_kv_rows(path, seed);
  rep.checks += kv.checks;
  for (const auto& f : kv.failures)
    if (rep.failures.size() < 40) rep.failures.push_back(f);
  return rep;
}

}  // namespace pocketlm::kernels::testing
