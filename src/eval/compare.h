#pragma once
// `pocketlm eval compare`: several results files of the same task set (variants of one model, e.g. its
// quantizations) compared over the examples common to all of them:
//   - per task and metric, the mean with a paired-bootstrap 95 % interval (the same resampled examples for
//     every variant; percentiles 2.5 / 97.5 with linear interpolation, as numpy.percentile);
//   - per pair of variants, per-example wins / losses / ties on the task's primary metric and the
//     bootstrap interval of the difference of means;
//   - the disagreement rate between the KLD (or perplexity) ranking and the task-score ranking.
// Definitions in docs/evaluation-tasks.md ("Disagreement rate").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/results.h"
#include "util/error.h"

namespace pocketlm {

inline constexpr int kDefaultBootstrapResamples = 1000;
inline constexpr uint64_t kDefaultBootstrapSeed = 12345;

struct Interval {
  double mean = 0, lo = 0, hi = 0;
};

// x[v][i]: score of variant v on example i (every variant has the same examples). Returns, per variant,
// the mean and its percentile interval, and per ordered pair (a, b) the interval of mean(a) - mean(b)
// (diff[a][b]). Deterministic for a given seed (splitmix64; no std::distribution).
struct BootstrapResult {
  std::vector<Interval> means;
  std::vector<std::vector<Interval>> diff;
};
BootstrapResult paired_bootstrap(const std::vector<std::vector<double>>& x, int resamples, uint64_t seed);

struct WinLoss {
  int64_t wins = 0, losses = 0, ties = 0;
};
WinLoss wins_losses(const std::vector<double>& a, const std::vector<double>& b);

// Comparisons where the proxy ranking (lower is better: KLD, perplexity) and the task ranking (higher is
// better) both prefer one side; `opposite` of them prefer different sides. `tied`: either side tied.
struct Disagreement {
  int64_t decided = 0, opposite = 0, tied = 0;
  double rate() const { return decided > 0 ? static_cast<double>(opposite) / static_cast<double>(decided) : 0.0; }
  void add(const Disagreement& o) {
    decided += o.decided;
    opposite += o.opposite;
    tied += o.tied;
  }
};
// Over unordered pairs of variants: proxy[v] against score[v] (the variant's mean task score).
Disagreement variant_disagreement(const std::vector<double>& proxy, const std::vector<double>& score);
// Over unordered pairs of variants and every example i: proxy[v] against x[v][i].
Disagreement example_disagreement(const std::vector<double>& proxy, const std::vector<std::vector<double>>& x);

// Reads a proxy value: a plain number (mean KLD), or a JSON file with "kld"/"mean_kld"/"kld_mean" (a
// number, or an object with "mean") and/or "ppl"/"perplexity" (a number, or an object with "value"/"mean").
struct ProxyValues {
  std::optional<double> kld, ppl;
};
Expected<ProxyValues> read_proxy(const std::string& arg);

struct CompareInputs {
  std::vector<std::string> results, labels, kld, bits_per_weight;
};
struct CompareOptions {
  int resamples = kDefaultBootstrapResamples;
  uint64_t seed = kDefaultBootstrapSeed;
  std::string x_axis = "bpw";  // or "size"
  // Labels of the variants the plot joins by a line (e.g. a quantization ladder); the others are drawn as
  // single points in a lighter shade (e.g. pruned files beside the ladder). Empty: every variant on the line.
  std::vector<std::string> line;
};

struct VariantInfo {
  std::string label, path;
  ResultsHeader header;
  double bits_per_weight = 0;
  ProxyValues proxy;
};
struct PairResult {
  size_t a = 0, b = 0;
  WinLoss wl;     // a vs b on the primary metric
  Interval diff;  // mean(a) - mean(b)
};
struct TaskComparison {
  std::string task;
  std::vector<std::string> metrics;  // the first is the primary metric
  size_t n_examples = 0;
  std::vector<std::vector<Interval>> scores;  // [variant][metric]
  std::vector<PairResult> pairs;
  Disagreement by_variant, by_example;
};
struct CompareReport {
  std::vector<VariantInfo> variants;
  std::vector<TaskComparison> tasks;
  std::string proxy;  // "KLD", "PPL" or "" (no disagreement)
  Disagreement by_variant, by_example;
  int resamples = 0;
  uint64_t seed = 0;
  std::string x_axis;
  std::vector<bool> on_line;  // per variant (CompareOptions::line)
  std::vector<std::string> notes;
};

Expected<CompareReport> compare_results(const CompareInputs& in, const CompareOptions& opt);
std::string report_markdown(const CompareReport& r);
std::string report_json(const CompareReport& r);
std::string report_svg(const CompareReport& r);

}  // namespace pocketlm
