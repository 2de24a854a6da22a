#include "quant/methods/awq.h"

#include <algorithm>
#include <cmath>

#include "formats/dequantize.h"
#include "formats/quantize.h"
#include "gguf/reader.h"
#include "quant/methods/calib_stats.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

bool is_block_type(GgmlType t) {
  return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16 && can_quantize(t);
}

struct SampledWeight {
  GgmlType type;
  int64_t rows = 0;      // sampled rows
  std::vector<float> w;  // rows x n, after the base transform
};

}  // namespace

Expected<WeightTransform> awq_search(const GgufFile& model, const CalibStats& stats, const WeightTypeFn& type_of,
                                     const AwqOptions& o, const WeightTransform* base, ThreadPool& pool,
                                     std::vector<AwqGroupResult>* report, const std::function<void()>& group_done) {
  WeightTransform result = base ? *base : WeightTransform{};
  const int grid = std::max(2, o.grid);
  for (const ScaleGroup& g : scale_groups(model)) {
    const InputStats* in = stats.find(g.weights.front());
    bool usable = in && !in->gram.empty() && in->count > 0;
    for (const std::string& name : g.weights) {
      const GgmlType t = type_of(name);
      usable = usable && stats.find(name) == in && is_block_type(t) && in->n % type_traits(t).block_size == 0;
    }
    if (!usable) {
      if (group_done) group_done();
      continue;
    }
    const int64_t n = in->n;
    // The statistics as the base transform leaves them: x' = x / c for the group's column factors c.
    const std::vector<float>* c0 = base ? base->col(g.weights.front()) : nullptr;
    std::vector<double> mean_abs(static_cast<size_t>(n)), imp(static_cast<size_t>(n));
    std::vector<float> H(in->gram);
    for (int64_t i = 0; i < n; ++i) {
      const double ci = c0 ? (*c0)[static_cast<size_t>(i)] : 1.0;
      mean_abs[static_cast<size_t>(i)] = in->mean_abs(i) / ci;
      imp[static_cast<size_t>(i)] = in->mean_sq(i) / (ci * ci);
      if (c0)
        for (int64_t j = 0; j < n; ++j)
          H[static_cast<size_t>(i * n + j)] /= static_cast<float>(ci * (*c0)[static_cast<size_t>(j)]);
    }
    std::vector<SampledWeight> ws;
    for (const std::string& name : g.weights) {
      const GgufTensor* t = model.tensor(name);
      const int64_t rows = t->n_rows();
      const int64_t take = o.search_rows > 0 ? std::min(rows, o.search_rows) : rows;
      std::vector<float> all = tensor_as_floats(*t);
      if (base) base->apply(name, all.data(), n, rows);
      SampledWeight sw;
      sw.type = type_of(name);
      sw.rows = take;
      sw.w.resize(static_cast<size_t>(take * n));
      for (int64_t k = 0; k < take; ++k) {
        const int64_t r = k * rows / take;
        std::copy(all.begin() + r * n, all.begin() + (r + 1) * n, sw.w.begin() + k * n);
      }
      for (float v : sw.w)
        if (!std::isfinite(v))
          return Error(model.path() + ": tensor '" + name +
                       "' holds a non-finite value (NaN or Inf): it cannot be quantized");
      ws.push_back(std::move(sw));
    }
    // Output error of the group for one channel scale, rows split over the pool.
    const auto group_error = [&](const std::vector<float>& s) {
      std::vector<float> imp_s(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        imp_s[static_cast<size_t>(i)] = static_cast<float>(
            imp[static_cast<size_t>(i)] / (static_cast<double>(s[static_cast<size_t>(i)]) * s[static_cast<size_t>(i)]));
      double total = 0;
      for (const SampledWeight& sw : ws) {
        std::vector<double> part(static_cast<size_t>(pool.size()), 0.0);
        pool.parallel_for(sw.rows, [&](int64_t r0, int64_t r1, int th) {
          std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
          std::vector<uint8_t> q(row_size(sw.type, n));
          std::vector<double> e(static_cast<size_t>(n));
          double acc = 0;
          for (int64_t r = r0; r < r1; ++r) {
            const float* w = sw.w.data() + r * n;
            for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = w[i] * s[static_cast<size_t>(i)];
            quantize_row(sw.type, x.data(), q.data(), n, imp_s.data(), o.search);
            dequantize_row(sw.type, q.data(), y.data(), n);
            for (int64_t i = 0; i < n; ++i)
              e[static_cast<size_t>(i)] =
                  static_cast<double>(y[static_cast<size_t>(i)]) / s[static_cast<size_t>(i)] - w[i];
            for (int64_t i = 0; i < n; ++i) {
              const double ei = e[static_cast<size_t>(i)];
              if (ei == 0) continue;
              const float* Hi = H.data() + i * n;
              double d = 0;
              for (int64_t j = 0; j < n; ++j) d += Hi[j] * e[static_cast<size_t>(j)];
              acc += ei * d;
            }
          }
          part[static_cast<size_t>(th)] += acc;
        });
        for (double p : part) total += p;
      }
      return total;
    };
    double amax = 0, amin = HUGE_VAL;
    for (double m : mean_abs)
      if (m > 0) amax = std::max(amax, m), amin = std::min(amin, m);
    std::vector<float> best(static_cast<size_t>(n), 1.0f), s(static_cast<size_t>(n));
    const double e0 = group_error(best);
    double best_err = e0, best_alpha = 0;
    for (int k = 1; k < grid && amax > 0; ++k) {
      const double alpha = static_cast<double>(k) / (grid - 1);
      const double norm = std::sqrt(std::pow(amax, alpha) * std::pow(amin, alpha));
      for (int64_t i = 0; i < n; ++i) {
        const double m = mean_abs[static_cast<size_t>(i)];
        s[static_cast<size_t>(i)] = m > 0 ? static_cast<float>(std::clamp(std::pow(m, alpha) / norm, 1e-4, 1e4)) : 1.0f;
      }
      const double e = group_error(s);
      if (e < best_err) best_err = e, best_alpha = alpha, best = s;
    }
    if (best_alpha > 0) set_group_scale(result, g, best);
    if (report) report->push_back({g.source, best_alpha, e0, best_err});
    if (group_done) group_done();
  }
  return result;
}

}  // namespace pocketlm
