#pragma once
// Statistics of a KL-divergence run, with llama-perplexity's estimators: mean ± standard error of the mean
// (sqrt((E[x²] - E[x]²) / (n - 1)), reported as 0 for n <= 10), PPL = exp(mean NLL) with error PPL × SE,
// ln(PPL(Q)/PPL(base)) with the covariance of the two NLL series taken into account, RMS Δp with the delta-
// method error, top-1 agreement with the binomial error sqrt(p(1-p)/(n-1)), and percentiles interpolated
// linearly between order statistics at fraction × (n - 1).
#include <cstdint>
#include <vector>

#include "eval/log_probs.h"

namespace pocketlm::eval {

struct MeanErr {
  double value = 0;
  double err = 0;
};

// The figures printed after each chunk.
struct KldRunning {
  MeanErr ppl, ln_ppl_ratio, kld, rms_dp, same_top;  // rms_dp and same_top as fractions
};

struct KldReport {
  int64_t positions = 0;
  MeanErr ppl, ppl_base, ln_ppl_ratio, ppl_ratio, ppl_diff;
  double ln_ppl_correlation = 0;  // Cor(ln PPL(Q), ln PPL(base))
  MeanErr kld;
  double kld_max = 0, kld_p999 = 0, kld_p99 = 0, kld_p95 = 0, kld_p90 = 0, kld_median = 0, kld_p10 = 0, kld_p5 = 0,
         kld_p1 = 0, kld_p01 = 0, kld_min = 0;
  MeanErr mean_dp, rms_dp;  // fractions (× 100 for %)
  double dp_max = 0, dp_p999 = 0, dp_p99 = 0, dp_p95 = 0, dp_p90 = 0, dp_p75 = 0, dp_median = 0, dp_p25 = 0, dp_p10 = 0,
         dp_p5 = 0, dp_p1 = 0, dp_p01 = 0, dp_min = 0;
  MeanErr same_top;  // fraction
  int64_t same_top_count = 0;
};

class KldAccumulator {
 public:
  void add(const KlPosition& p);
  int64_t count() const { return count_; }
  KldRunning running() const;
  KldReport report() const;  // sorts copies of the per-position values

 private:
  double nll_ = 0, nll2_ = 0, nll_base_ = 0, nll_base2_ = 0, nll_nll_base_ = 0;
  double kld_ = 0, kld2_ = 0, dp_ = 0, dp2_ = 0, dp4_ = 0;
  int64_t same_top_ = 0, count_ = 0;
  std::vector<float> kld_values_, dp_values_;
};

// Mean and standard error of the mean from sums, as llama-perplexity estimates them.
MeanErr mean_and_error(double sum, double sum2, int64_t count);
// Linear interpolation between order statistics of sorted values at fraction × (n - 1).
double percentile(const std::vector<float>& sorted, double fraction);

}  // namespace pocketlm::eval
