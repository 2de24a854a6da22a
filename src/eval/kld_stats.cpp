#include "eval/kld_stats.h"

#include "util/stats.h"

#include <algorithm>
#include <cmath>

namespace pocketlm::eval {
namespace {

// Covariance of the means of two series (0 for fewer than 10 values).
double mean_covariance(double sum_a, double sum_b, double sum_ab, int64_t count) {
  if (count < 10) return 0.0;
  const auto n = static_cast<double>(count);
  return (sum_ab / n - (sum_a / n) * (sum_b / n)) / (n - 1);
}

MeanErr exp_of(MeanErr log_value) { return {std::exp(log_value.value), std::exp(log_value.value) * log_value.err}; }

}  // namespace

MeanErr mean_and_error(double sum, double sum2, int64_t count) {
  if (count < 1) return {};
  const auto n = static_cast<double>(count);
  const double mean = sum / n;
  const double var = sum2 / n - mean * mean;
  return {mean, var > 0 && count > 10 ? std::sqrt(var / (n - 1)) : 0.0};
}

double percentile(const std::vector<float>& sorted, double fraction) {
  return percentile_sorted(std::span<const float>(sorted), fraction);
}

void KldAccumulator::add(const KlPosition& p) {
  const double nll = p.nll, nll_base = p.nll_base;
  nll_ += nll;
  nll2_ += nll * nll;
  nll_base_ += nll_base;
  nll_base2_ += nll_base * nll_base;
  nll_nll_base_ += nll * nll_base;
  kld_ += p.kld;
  kld2_ += p.kld * p.kld;
  const double dp = p.p_diff, dp2 = dp * dp;
  dp_ += dp;
  dp2_ += dp2;
  dp4_ += dp2 * dp2;
  same_top_ += p.same_top ? 1 : 0;
  ++count_;
  kld_values_.push_back(static_cast<float>(p.kld));
  dp_values_.push_back(p.p_diff);
}

KldRunning KldAccumulator::running() const {
  KldRunning r;
  const MeanErr ln_ppl = mean_and_error(nll_, nll2_, count_);
  const MeanErr ln_ppl_base = mean_and_error(nll_base_, nll_base2_, count_);
  r.ppl = exp_of(ln_ppl);
  const double cov = mean_covariance(nll_, nll_base_, nll_nll_base_, count_);
  r.ln_ppl_ratio = {ln_ppl.value - ln_ppl_base.value,
                    std::sqrt(std::max(0.0, ln_ppl.err * ln_ppl.err + ln_ppl_base.err * ln_ppl_base.err - 2.0 * cov))};
  r.kld = mean_and_error(kld_, kld2_, count_);
  const MeanErr mse = mean_and_error(dp2_, dp4_, count_);
  r.rms_dp.value = std::sqrt(mse.value);
  r.rms_dp.err = r.rms_dp.value > 0 ? 0.5 / r.rms_dp.value * mse.err : 0.0;
  if (count_ > 0) {
    const double top = static_cast<double>(same_top_) / static_cast<double>(count_);
    r.same_top = {top, count_ > 1 ? std::sqrt(top * (1 - top) / static_cast<double>(count_ - 1)) : 0.0};
  }
  return r;
}

KldReport KldAccumulator::report() const {
  KldReport r;
  const KldRunning run = running();
  r.positions = count_;
  const MeanErr ln_ppl = mean_and_error(nll_, nll2_, count_);
  const MeanErr ln_ppl_base = mean_and_error(nll_base_, nll_base2_, count_);
  r.ppl = exp_of(ln_ppl);
  r.ppl_base = exp_of(ln_ppl_base);
  const double cov = mean_covariance(nll_, nll_base_, nll_nll_base_, count_);
  r.ln_ppl_correlation = ln_ppl.err > 0 && ln_ppl_base.err > 0 ? cov / (ln_ppl.err * ln_ppl_base.err) : 0.0;
  r.ln_ppl_ratio = run.ln_ppl_ratio;
  r.ppl_ratio = exp_of(run.ln_ppl_ratio);
  const double ppl_cov = r.ppl.value * r.ppl_base.value * cov;
  r.ppl_diff = {r.ppl.value - r.ppl_base.value,
                std::sqrt(std::max(0.0, r.ppl.err * r.ppl.err + r.ppl_base.err * r.ppl_base.err - 2.0 * ppl_cov))};
  r.kld = run.kld;
  r.rms_dp = run.rms_dp;
  r.same_top = run.same_top;
  r.same_top_count = same_top_;
  r.mean_dp = mean_and_error(dp_, dp2_, count_);
  if (count_ == 0) return r;

  std::vector<float> k = kld_values_, d = dp_values_;
  std::sort(k.begin(), k.end());
  std::sort(d.begin(), d.end());
  r.kld_max = k.back();
  r.kld_p999 = percentile(k, 0.999);
  r.kld_p99 = percentile(k, 0.99);
  r.kld_p95 = percentile(k, 0.95);
  r.kld_p90 = percentile(k, 0.90);
  r.kld_median = percentile(k, 0.5);
  r.kld_p10 = percentile(k, 0.10);
  r.kld_p5 = percentile(k, 0.05);
  r.kld_p1 = percentile(k, 0.01);
  r.kld_p01 = percentile(k, 0.001);
  r.kld_min = k.front();
  r.dp_max = d.back();
  r.dp_p999 = percentile(d, 0.999);
  r.dp_p99 = percentile(d, 0.99);
  r.dp_p95 = percentile(d, 0.95);
  r.dp_p90 = percentile(d, 0.90);
  r.dp_p75 = percentile(d, 0.75);
  r.dp_median = percentile(d, 0.5);
  r.dp_p25 = percentile(d, 0.25);
  r.dp_p10 = percentile(d, 0.10);
  r.dp_p5 = percentile(d, 0.05);
  r.dp_p1 = percentile(d, 0.01);
  r.dp_p01 = percentile(d, 0.001);
  r.dp_min = d.front();
  return r;
}

}  // namespace pocketlm::eval
