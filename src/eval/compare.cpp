#include "eval/compare.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "eval/svg_plot.h"
#include "util/splitmix64.h"
#include "util/stats.h"

namespace pocketlm {

namespace {

double percentile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  return percentile_sorted(std::span<const double>(v), q);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

int sign(double d) { return d > 1e-12 ? 1 : d < -1e-12 ? -1 : 0; }

}  // namespace

BootstrapResult paired_bootstrap(const std::vector<std::vector<double>>& x, int resamples, uint64_t seed) {
  const size_t nv = x.size(), n = nv ? x[0].size() : 0;
  BootstrapResult r;
  r.means.resize(nv);
  r.diff.assign(nv, std::vector<Interval>(nv));
  if (n == 0) return r;
  std::vector<std::vector<double>> samples(nv, std::vector<double>(static_cast<size_t>(resamples)));
  std::vector<double> sums(nv);
  SplitMix64 rng(seed);
  for (int b = 0; b < resamples; ++b) {
    std::fill(sums.begin(), sums.end(), 0.0);
    for (size_t k = 0; k < n; ++k) {
      const auto i = static_cast<size_t>(rng.below(n));
      for (size_t v = 0; v < nv; ++v) sums[v] += x[v][i];
    }
    for (size_t v = 0; v < nv; ++v) samples[v][static_cast<size_t>(b)] = sums[v] / static_cast<double>(n);
  }
  for (size_t v = 0; v < nv; ++v) {
    std::vector<double> s = samples[v];
    r.means[v] = {mean(x[v]), percentile(s, 0.025), percentile(s, 0.975)};
  }
  for (size_t a = 0; a < nv; ++a)
    for (size_t c = 0; c < nv; ++c) {
      if (a == c) continue;
      std::vector<double> d(static_cast<size_t>(resamples));
      for (size_t b = 0; b < d.size(); ++b) d[b] = samples[a][b] - samples[c][b];
      r.diff[a][c] = {mean(x[a]) - mean(x[c]), percentile(d, 0.025), percentile(d, 0.975)};
    }
  return r;
}

WinLoss wins_losses(const std::vector<double>& a, const std::vector<double>& b) {
  WinLoss w;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const int s = sign(a[i] - b[i]);
    (s > 0 ? w.wins : s < 0 ? w.losses : w.ties)++;
  }
  return w;
}

namespace {

// One comparison: +1 when the proxy prefers u (lower), and likewise the task (higher).
void tally(double proxy_u, double proxy_v, double score_u, double score_v, Disagreement& d) {
  const int p = sign(proxy_v - proxy_u), t = sign(score_u - score_v);
  if (p == 0 || t == 0) {
    ++d.tied;
    return;
  }
  ++d.decided;
  if (p != t) ++d.opposite;
}

}  // namespace

Disagreement variant_disagreement(const std::vector<double>& proxy, const std::vector<double>& score) {
  Disagreement d;
  for (size_t u = 0; u < proxy.size(); ++u)
    for (size_t v = u + 1; v < proxy.size(); ++v) tally(proxy[u], proxy[v], score[u], score[v], d);
  return d;
}

Disagreement example_disagreement(const std::vector<double>& proxy, const std::vector<std::vector<double>>& x) {
  Disagreement d;
  for (size_t u = 0; u < proxy.size(); ++u)
    for (size_t v = u + 1; v < proxy.size(); ++v)
      for (size_t i = 0; i < x[u].size(); ++i) tally(proxy[u], proxy[v], x[u][i], x[v][i], d);
  return d;
}

Expected<ProxyValues> read_proxy(const std::string& arg) {
  ProxyValues p;
  double v = 0;
  const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), v);
  if (ec == std::errc() && ptr == arg.data() + arg.size()) {
    p.kld = v;
    return p;
  }
  std::ifstream in(arg);
  if (!in) return Error(arg + ": neither a number nor a readable file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    return Error(arg + ": not JSON (" + e.what() + ")");
  }
  auto pick = [&j](std::initializer_list<const char*> keys,
                   std::initializer_list<const char*> sub) -> std::optional<double> {
    for (const char* k : keys) {
      if (!j.contains(k)) continue;
      const auto& x = j.at(k);
      if (x.is_number()) return x.get<double>();
      if (x.is_object())
        for (const char* s : sub)
          if (x.contains(s) && x.at(s).is_number()) return x.at(s).get<double>();
    }
    return std::nullopt;
  };
  if (!j.is_object()) return Error(arg + ": expected a JSON object");
  p.kld = pick({"kld", "mean_kld", "kld_mean", "kl_divergence"}, {"mean"});
  p.ppl = pick({"ppl", "perplexity"}, {"value", "mean", "ppl"});
  // `pocketlm perplexity --kl-divergence … -o json`: {"kl_divergence": {"kld": {"mean": …}, "ppl": {"value": …}}}.
  if (j.contains("kl_divergence") && j.at("kl_divergence").is_object()) {
    const auto& k = j.at("kl_divergence");
    auto sub = [&k](const char* key, const char* field) -> std::optional<double> {
      if (k.contains(key) && k.at(key).is_object() && k.at(key).contains(field) && k.at(key).at(field).is_number())
        return k.at(key).at(field).get<double>();
      return std::nullopt;
    };
    if (!p.kld) p.kld = sub("kld", "mean");
    if (!p.ppl) p.ppl = sub("ppl", "value");
  }
  if (!p.kld && !p.ppl)
    return Error(arg +
                 ": no \"kld\" (or \"mean_kld\", \"kld_mean\", \"kl_divergence\") nor \"ppl\"/\"perplexity\" field");
  return p;
}

Expected<CompareReport> compare_results(const CompareInputs& in, const CompareOptions& opt) {
  const size_t nv = in.results.size();
  if (nv < 2) return Error("compare needs at least two results files");
  if (!in.labels.empty() && in.labels.size() != nv)
    return Error(std::to_string(in.labels.size()) + " labels for " + std::to_string(nv) + " results files")
        .about("labels");
  if (!in.kld.empty() && in.kld.size() != nv)
    return Error(std::to_string(in.kld.size()) + " KLD values for " + std::to_string(nv) + " results files")
        .about("kld");
  if (!in.bits_per_weight.empty() && in.bits_per_weight.size() != nv)
    return Error(std::to_string(in.bits_per_weight.size()) + " bits-per-weight values for " + std::to_string(nv) +
                 " results files")
        .about("bits_per_weight");
  CompareReport rep;
  rep.resamples = opt.resamples;
  rep.seed = opt.seed;
  rep.x_axis = opt.x_axis;
  std::vector<std::map<std::string, const ResultRecord*>> by_key(nv);
  std::vector<ResultsContent> contents(nv);
  for (size_t v = 0; v < nv; ++v) {
    PLM_TRY(contents[v], read_results(in.results[v]));
    const ResultsContent& c = contents[v];
    if (!c.has_header) return Error(in.results[v] + ": empty, or not a results file of `pocketlm eval`");
    if (c.torn_tail) rep.notes.push_back(in.results[v] + ": the last line is torn (an interrupted run); it is ignored");
    VariantInfo vi;
    vi.path = in.results[v];
    vi.label = in.labels.empty() ? std::filesystem::path(vi.path).stem().string() : in.labels[v];
    vi.header = c.header;
    vi.bits_per_weight = c.header.bits_per_weight;
    if (!in.bits_per_weight.empty()) {
      const std::string& s = in.bits_per_weight[v];
      double x = 0;
      const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec != std::errc() || ptr != s.data() + s.size() || x <= 0)
        return Error("bits per weight \"" + s + "\" is not a positive number").about("bits_per_weight");
      vi.bits_per_weight = x;
    }
    if (!in.kld.empty()) {
      PLM_TRY(vi.proxy, read_proxy(in.kld[v]));
    }
    rep.variants.push_back(vi);
    for (const auto& r : c.records) by_key[v][r.key] = &r;
  }
  rep.on_line.assign(nv, opt.line.empty());
  for (const auto& l : opt.line) {
    size_t hits = 0;
    for (size_t v = 0; v < nv; ++v)
      if (rep.variants[v].label == l) rep.on_line[v] = true, ++hits;
    if (hits == 0) return Error("\"" + l + "\" is not the label of any variant").about("line");
  }
  for (size_t v = 1; v < nv; ++v)
    if (rep.variants[v].header.tokenizer_hash != rep.variants[0].header.tokenizer_hash)
      rep.notes.push_back(rep.variants[v].label + " and " + rep.variants[0].label +
                          " have different tokenizers: these are different models, not variants of one");
  // Proxy: KLD when every variant has one, else perplexity when every variant has one.
  std::vector<double> proxy(nv);
  bool all_kld = !in.kld.empty(), all_ppl = !in.kld.empty();
  for (const auto& vi : rep.variants) {
    all_kld = all_kld && vi.proxy.kld.has_value();
    all_ppl = all_ppl && vi.proxy.ppl.has_value();
  }
  if (all_kld) {
    rep.proxy = "KLD";
    for (size_t v = 0; v < nv; ++v) proxy[v] = *rep.variants[v].proxy.kld;
  } else if (all_ppl) {
    rep.proxy = "PPL";
    for (size_t v = 0; v < nv; ++v) proxy[v] = *rep.variants[v].proxy.ppl;
  } else {
    rep.notes.push_back("no KLD or perplexity for every variant (--kld): the disagreement rate is not computed");
  }

  // Tasks in the order of the first file; examples common to all files.
  std::vector<std::string> task_order;
  std::map<std::string, std::vector<std::string>> task_keys;
  size_t dropped = 0;
  for (const auto& r : contents[0].records) {
    bool everywhere = true;
    for (size_t v = 1; v < nv && everywhere; ++v) everywhere = by_key[v].count(r.key) > 0;
    if (!everywhere) {
      ++dropped;
      continue;
    }
    if (!task_keys.count(r.task)) task_order.push_back(r.task);
    task_keys[r.task].push_back(r.key);
  }
  if (dropped)
    rep.notes.push_back(std::to_string(dropped) + " examples of " + rep.variants[0].label +
                        " are missing from another file; left out");
  if (task_order.empty()) return Error("the results files have no example in common");
  for (const auto& task : task_order) {
    TaskComparison tc;
    tc.task = task;
    const auto& keys = task_keys[task];
    tc.n_examples = keys.size();
    for (const auto& entry : by_key[0].at(keys[0])->scores) {
      const auto& m = entry.first;  // (a named reference: clang 14 cannot capture a structured binding)
      bool everywhere = true;
      for (size_t v = 0; v < nv && everywhere; ++v)
        for (const auto& k : keys) {
          const auto& sc = by_key[v].at(k)->scores;
          if (std::none_of(sc.begin(), sc.end(), [&m](const auto& p) { return p.first == m; })) {
            everywhere = false;
            break;
          }
        }
      if (everywhere) tc.metrics.push_back(m);
    }
    if (tc.metrics.empty()) return Error("task " + task + ": no metric is present in every results file");
    // The task kind's own order (primary metric first), whatever the order in the file.
    const std::string& kind = by_key[0].at(keys[0])->kind;
    for (TaskKind k : {TaskKind::Summarize, TaskKind::Translate, TaskKind::CommitMessage}) {
      if (task_kind_name(k) != kind) continue;
      const auto names = task_metric_names(k);
      auto rank = [&names](const std::string& m) { return std::find(names.begin(), names.end(), m) - names.begin(); };
      std::stable_sort(tc.metrics.begin(), tc.metrics.end(),
                       [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
    }
    tc.scores.assign(nv, std::vector<Interval>(tc.metrics.size()));
    std::vector<std::vector<double>> primary;
    for (size_t mi = 0; mi < tc.metrics.size(); ++mi) {
      std::vector<std::vector<double>> x(nv, std::vector<double>(keys.size()));
      for (size_t v = 0; v < nv; ++v)
        for (size_t i = 0; i < keys.size(); ++i)
          for (const auto& [name, val] : by_key[v].at(keys[i])->scores)
            if (name == tc.metrics[mi]) x[v][i] = val;
      // Each metric gets its own stream of resamples from the same seed: the same example draws.
      const BootstrapResult b = paired_bootstrap(x, opt.resamples, opt.seed);
      for (size_t v = 0; v < nv; ++v) tc.scores[v][mi] = b.means[v];
      if (mi == 0) {
        primary = x;
        for (size_t a = 0; a < nv; ++a)
          for (size_t c = a + 1; c < nv; ++c) tc.pairs.push_back({a, c, wins_losses(x[a], x[c]), b.diff[a][c]});
      }
    }
    if (!rep.proxy.empty()) {
      std::vector<double> means(nv);
      for (size_t v = 0; v < nv; ++v) means[v] = tc.scores[v][0].mean;
      tc.by_variant = variant_disagreement(proxy, means);
      tc.by_example = example_disagreement(proxy, primary);
      rep.by_variant.add(tc.by_variant);
      rep.by_example.add(tc.by_example);
    }
    rep.tasks.push_back(std::move(tc));
  }
  return rep;
}

namespace {

std::string f2(double v) {
  char b[32];
  if (std::fabs(v) < 0.005) v = 0.0;  // no "-0.00"

  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}
std::string g4(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
std::string pct(const Disagreement& d) {
  if (d.decided == 0) return "–";
  char b[64];
  std::snprintf(b, sizeof b, "%.1f %% (%lld/%lld)", 100 * d.rate(), static_cast<long long>(d.opposite),
                static_cast<long long>(d.decided));
  return b;
}
double mib(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

}  // namespace

std::string report_markdown(const CompareReport& r) {
  std::string o =
      "## Variants\n\n| variant | model | size (MiB) | bits/weight | KLD | PPL |\n|---|---|---:|---:|---:|---:|\n";
  for (const auto& v : r.variants)
    o += "| " + v.label + " | " + std::filesystem::path(v.header.model).filename().string() + " | " +
         f2(mib(v.header.file_size)) + " | " + f2(v.bits_per_weight) + " | " + (v.proxy.kld ? g4(*v.proxy.kld) : "–") +
         " | " + (v.proxy.ppl ? g4(*v.proxy.ppl) : "–") + " |\n";
  o += "\n## Task scores\n\nMean over the examples common to all variants, with paired-bootstrap 95 % intervals (" +
       std::to_string(r.resamples) + " resamples, seed " + std::to_string(r.seed) +
       "). Scores are 0–100.\n\n| task | n | metric |";
  for (const auto& v : r.variants) o += " " + v.label + " |";
  o += "\n|---|---:|---|";
  for (size_t i = 0; i < r.variants.size(); ++i) o += "---|";
  o += "\n";
  for (const auto& t : r.tasks)
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      o += "| " + t.task + " | " + std::to_string(t.n_examples) + " | " + t.metrics[m] + (m == 0 ? " (primary)" : "") +
           " |";
      for (size_t v = 0; v < r.variants.size(); ++v) {
        const Interval& s = t.scores[v][m];
        o += " " + f2(s.mean) + " [" + f2(s.lo) + ", " + f2(s.hi) + "] |";
      }
      o += "\n";
    }
  o += "\n## Per-example wins / losses / ties (primary metric)\n\n| task | A vs B | A wins | B wins | ties | mean A − "
       "B [95 %] |\n|---|---|---:|---:|---:|---|\n";
  for (const auto& t : r.tasks)
    for (const auto& p : t.pairs)
      o += "| " + t.task + " | " + r.variants[p.a].label + " vs " + r.variants[p.b].label + " | " +
           std::to_string(p.wl.wins) + " | " + std::to_string(p.wl.losses) + " | " + std::to_string(p.wl.ties) + " | " +
           f2(p.diff.mean) + " [" + f2(p.diff.lo) + ", " + f2(p.diff.hi) + "] |\n";
  o += "\n## Disagreement rate\n\n";
  if (r.proxy.empty()) {
    o += "Not computed: give every variant a KLD or perplexity with --kld.\n";
  } else {
    o += "How often the " + r.proxy +
         " ranking (lower is better) and the task-score ranking (primary metric, higher is better) of two "
         "variants point in opposite directions, over the comparisons where both prefer a side "
         "(docs/evaluation-tasks.md). "
         "Per variant pair: the task's mean score; per example: each example's score. Per-example " +
         r.proxy +
         " is not available (it is measured on a text corpus, not on the task examples), so the example-level rate "
         "compares each "
         "example's scores with the variants' overall " +
         r.proxy +
         ".\n\n"
         "| task | variant pairs | example pairs |\n|---|---|---|\n";
    for (const auto& t : r.tasks) o += "| " + t.task + " | " + pct(t.by_variant) + " | " + pct(t.by_example) + " |\n";
    o += "| **overall** | " + pct(r.by_variant) + " | " + pct(r.by_example) + " |\n";
  }
  if (!r.notes.empty()) {
    o += "\nNotes:\n";
    for (const auto& n : r.notes) o += "- " + n + "\n";
  }
  return o;
}

std::string report_json(const CompareReport& r) {
  using json = nlohmann::ordered_json;  // fields in the order written
  json j;
  j["resamples"] = r.resamples;
  j["seed"] = r.seed;
  j["proxy"] = r.proxy;
  for (const auto& v : r.variants) {
    json x = {{"label", v.label},
              {"results", v.path},
              {"model", v.header.model},
              {"file_size", v.header.file_size},
              {"bits_per_weight", v.bits_per_weight},
              {"n_params", v.header.n_params},
              {"tokenizer_hash", v.header.tokenizer_hash}};
    x["kld"] = v.proxy.kld ? json(*v.proxy.kld) : json(nullptr);
    x["ppl"] = v.proxy.ppl ? json(*v.proxy.ppl) : json(nullptr);
    j["variants"].push_back(x);
  }
  auto dj = [](const Disagreement& d) {
    return json{{"decided", d.decided},
                {"opposite", d.opposite},
                {"tied", d.tied},
                {"rate", d.decided ? json(d.rate()) : json(nullptr)}};
  };
  for (const auto& t : r.tasks) {
    json tj = {
        {"task", t.task}, {"n_examples", t.n_examples}, {"metrics", t.metrics}, {"primary_metric", t.metrics[0]}};
    for (size_t v = 0; v < r.variants.size(); ++v) {
      json s;
      for (size_t m = 0; m < t.metrics.size(); ++m)
        s[t.metrics[m]] = {{"mean", t.scores[v][m].mean}, {"ci95", {t.scores[v][m].lo, t.scores[v][m].hi}}};
      tj["scores"][r.variants[v].label] = s;
    }
    for (const auto& p : t.pairs)
      tj["pairs"].push_back({{"a", r.variants[p.a].label},
                             {"b", r.variants[p.b].label},
                             {"a_wins", p.wl.wins},
                             {"b_wins", p.wl.losses},
                             {"ties", p.wl.ties},
                             {"mean_diff", p.diff.mean},
                             {"ci95", {p.diff.lo, p.diff.hi}}});
    if (!r.proxy.empty())
      tj["disagreement"] = {{"variant_pairs", dj(t.by_variant)}, {"example_pairs", dj(t.by_example)}};
    j["tasks"].push_back(tj);
  }
  if (!r.proxy.empty()) j["disagreement"] = {{"variant_pairs", dj(r.by_variant)}, {"example_pairs", dj(r.by_example)}};
  j["notes"] = r.notes;
  return j.dump(1) + "\n";
}

std::string report_svg(const CompareReport& r) {
  // Per task a colour; the variants off the line (CompareOptions::line) in a lighter shade of it.
  static const char* kColors[][2] = {{"#1f77b4", "#8fc1e3"}, {"#d62728", "#f0a0a0"}, {"#2ca02c", "#a3d9a3"},
                                     {"#9467bd", "#cdb6e3"}, {"#ff7f0e", "#ffc58f"}, {"#8c564b", "#cfaea7"},
                                     {"#e377c2", "#f3c1e3"}, {"#17becf", "#9fe6ee"}};
  SvgChart c;
  const bool size = r.x_axis == "size";
  c.x_label = size ? "model file size (MiB)" : "bits per weight";
  c.y_label = "task score (primary metric, 0-100)";
  c.y2_label = r.proxy == "PPL" ? "perplexity" : "KLD vs base";
  c.title = "Task scores" + std::string(r.proxy.empty() ? "" : " and " + r.proxy) + " by " +
            (size ? "file size" : "bits per weight");
  if (r.variants.size() > 8) {  // room for the labels
    c.width = 1000;
    c.height = 640;
  }
  std::vector<size_t> order(r.variants.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto xof = [&](size_t v) { return size ? mib(r.variants[v].header.file_size) : r.variants[v].bits_per_weight; };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return xof(a) < xof(b); });
  const bool split = std::find(r.on_line.begin(), r.on_line.end(), false) != r.on_line.end();
  // One series per task (and for the proxy), split in the line and the single points when asked. Labels on
  // the first task's points and the proxy's.
  auto add = [&](const std::string& name, const char* color, bool proxy, bool line_part, auto value, bool label) {
    SvgSeries s;
    s.name = split ? name + (line_part ? "" : " (single files)") : name;
    s.color = color;
    s.right_axis = proxy;
    s.dashed = proxy && line_part;
    s.markers_only = !line_part;
    for (size_t v : order) {
      if (split && r.on_line[v] != line_part) continue;
      s.points.emplace_back(xof(v), value(v));
      s.labels.push_back(label ? r.variants[v].label : "");
    }
    if (!s.points.empty()) c.series.push_back(std::move(s));
  };
  for (const bool line_part : {true, false}) {
    if (!line_part && !split) break;
    for (size_t t = 0; t < r.tasks.size(); ++t)
      add(
          r.tasks[t].task + " " + r.tasks[t].metrics[0], kColors[t % std::size(kColors)][line_part ? 0 : 1], false,
          line_part, [&](size_t v) { return r.tasks[t].scores[v][0].mean; }, t == 0);
    if (!r.proxy.empty())
      add(
          r.proxy, line_part ? "#555555" : "#999999", true, line_part,
          [&](size_t v) { return r.proxy == "KLD" ? *r.variants[v].proxy.kld : *r.variants[v].proxy.ppl; }, true);
  }
  return render_svg(c);
}

}  // namespace pocketlm
