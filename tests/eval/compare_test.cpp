// eval compare: bootstrap determinism, a hand-checkable interval, wins/losses, and the disagreement rate
// on constructed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/compare.h"
#include "eval/results.h"
#include "eval/svg_plot.h"

namespace pocketlm {
namespace {

TEST(EvalCompare, BootstrapIsDeterministicForASeed) {
  std::vector<std::vector<double>> x = {{1, 5, 2, 8, 3, 9, 4}, {2, 4, 2, 7, 6, 9, 1}};
  const auto a = paired_bootstrap(x, 500, 7), b = paired_bootstrap(x, 500, 7), c = paired_bootstrap(x, 500, 8);
  EXPECT_EQ(a.means[0].lo, b.means[0].lo);
  EXPECT_EQ(a.means[1].hi, b.means[1].hi);
  EXPECT_EQ(a.diff[0][1].lo, b.diff[0][1].lo);
  EXPECT_NE(a.means[0].lo, c.means[0].lo);  // another seed, other resamples
  EXPECT_DOUBLE_EQ(a.means[0].mean, 32.0 / 7);
}

// Hand-checkable: every example scores 3 → every resampled mean is 3, the interval is [3, 3]. Two
// variants differing by a constant 2 on every example → the difference interval is exactly [2, 2].
// A 0/1 variable with mean 1/2 over 1000 examples has a standard error of 0.0158: the percentile interval
// is about ±1.96 × 0.0158.
TEST(EvalCompare, BootstrapHandCheckableCases) {
  std::vector<std::vector<double>> x = {std::vector<double>(50, 3.0), std::vector<double>(50, 1.0)};
  const auto r = paired_bootstrap(x, 1000, 1);
  EXPECT_DOUBLE_EQ(r.means[0].lo, 3.0);
  EXPECT_DOUBLE_EQ(r.means[0].hi, 3.0);
  EXPECT_DOUBLE_EQ(r.diff[0][1].lo, 2.0);
  EXPECT_DOUBLE_EQ(r.diff[0][1].hi, 2.0);
  std::vector<double> coin(1000);
  for (size_t i = 0; i < coin.size(); ++i) coin[i] = static_cast<double>(i % 2);
  const auto c = paired_bootstrap({coin}, 2000, 3);
  EXPECT_NEAR(c.means[0].lo, 0.5 - 1.96 * 0.0158, 0.004);
  EXPECT_NEAR(c.means[0].hi, 0.5 + 1.96 * 0.0158, 0.004);
}

TEST(EvalCompare, WinsLossesTies) {
  const WinLoss w = wins_losses({1, 2, 3, 4}, {0, 2, 5, 1});
  EXPECT_EQ(w.wins, 2);
  EXPECT_EQ(w.losses, 1);
  EXPECT_EQ(w.ties, 1);
}

// Three variants: KLD 0 (A), 0.1 (B), 0.3 (C): the proxy ranks A > B > C. Task means 50 (A), 55 (B),
// 40 (C): pairs A-B disagree (B scores higher despite a higher KLD), A-C and B-C agree → 1 of 3.
TEST(EvalCompare, DisagreementOnAConstructedCase) {
  const Disagreement d = variant_disagreement({0.0, 0.1, 0.3}, {50, 55, 40});
  EXPECT_EQ(d.decided, 3);
  EXPECT_EQ(d.opposite, 1);
  EXPECT_NEAR(d.rate(), 1.0 / 3, 1e-12);
  // A tie on either side is not a decided comparison.
  const Disagreement t = variant_disagreement({0.0, 0.0, 0.3}, {50, 55, 55});
  EXPECT_EQ(t.decided, 1);  // only A-C: KLD prefers A, score prefers C
  EXPECT_EQ(t.opposite, 1);
  EXPECT_EQ(t.tied, 2);
  // Per example: 2 variants, 4 examples: example scores (A,B) = (1,0) agree, (0,1) disagree, (2,2) tie,
  // (3,1) agree → 1 of 3 decided.
  const Disagreement e = example_disagreement({0.0, 0.2}, {{1, 0, 2, 3}, {0, 1, 2, 1}});
  EXPECT_EQ(e.decided, 3);
  EXPECT_EQ(e.opposite, 1);
  EXPECT_EQ(e.tied, 1);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("pocketlm_cmp_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write_results(const std::string& path, double bpw, const std::vector<double>& scores, uint64_t size) {
  ResultsHeader h;
  h.model = path + ".gguf";
  h.file_size = size;
  h.n_params = 1000;
  h.bits_per_weight = bpw;
  h.tokenizer_hash = "00000000deadbeef";
  std::ofstream o(path, std::ios::binary);
  o << header_to_json(h) << "\n";
  for (size_t i = 0; i < scores.size(); ++i) {
    ResultRecord r;
    r.id = std::to_string(i);
    r.task = "translate.en-fr";
    r.key = r.task + "/" + r.id;
    r.kind = "translate";
    r.output = "x";
    r.scores = {{"chrf", scores[i]}, {"bleu", scores[i] / 2}};
    o << record_to_json(r) << "\n";
  }
}

TEST(EvalCompare, ReportOverCommonExamples) {
  const std::string a = temp_path("a.jsonl"), b = temp_path("b.jsonl"), c = temp_path("c.jsonl");
  write_results(a, 8.5, {50, 60, 70, 80}, 8000);
  write_results(b, 4.5, {40, 60, 75, 60, 99}, 4000);  // one extra example: not common, left out
  write_results(c, 2.5, {10, 20, 30, 40}, 2000);
  CompareInputs in;
  in.results = {a, b, c};
  in.labels = {"Q8", "Q4", "Q2"};
  in.kld = {"0", "0.05", "0.4"};
  auto r = compare_results(in, {});
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->tasks.size(), 1u);
  const TaskComparison& t = r->tasks[0];
  EXPECT_EQ(t.n_examples, 4u);
  EXPECT_EQ(t.metrics[0], "chrf");
  EXPECT_DOUBLE_EQ(t.scores[0][0].mean, 65.0);
  EXPECT_DOUBLE_EQ(t.scores[1][0].mean, 58.75);
  ASSERT_EQ(t.pairs.size(), 3u);
  EXPECT_EQ(t.pairs[0].wl.wins, 2);  // Q8 vs Q4: 50>40, 60=60, 70<75, 80>60
  EXPECT_EQ(t.pairs[0].wl.ties, 1);
  EXPECT_EQ(r->proxy, "KLD");
  EXPECT_EQ(t.by_variant.decided, 3);
  EXPECT_EQ(t.by_variant.opposite, 0);
  EXPECT_EQ(t.by_example.opposite, 1);  // example 3: Q4 beats Q8 despite a higher KLD
  const std::string md = report_markdown(*r);
  EXPECT_NE(md.find("| translate.en-fr | 4 | chrf (primary) | 65.00 ["), std::string::npos) << md;
  EXPECT_NE(md.find("Q8 vs Q4 | 2 | 1 | 1 |"), std::string::npos) << md;
  const std::string svg = report_svg(*r);
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find(">Q2</text>"), std::string::npos);
  EXPECT_NE(report_json(*r).find("\"proxy\": \"KLD\""), std::string::npos);
  // --line: Q8 and Q2 joined (one polyline per task and for the KLD), Q4 a single point in each series.
  const auto polylines = [](const std::string& text) {
    size_t n = 0;
    for (size_t at = text.find("<polyline"); at != std::string::npos; at = text.find("<polyline", at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(polylines(svg), 2u);
  CompareOptions line_opt;
  line_opt.line = {"Q8", "Q2"};
  auto lr = compare_results(in, line_opt);
  ASSERT_TRUE(lr) << lr.error().message();
  EXPECT_EQ(lr->on_line, (std::vector<bool>{true, false, true}));
  const std::string lsvg = report_svg(*lr);
  EXPECT_EQ(polylines(lsvg), 2u);
  EXPECT_NE(lsvg.find("translate.en-fr chrf (single files)"), std::string::npos) << lsvg;
  EXPECT_NE(lsvg.find(">Q4</text>"), std::string::npos);
  line_opt.line = {"Q8", "Q3"};
  auto bad_line = compare_results(in, line_opt);
  ASSERT_FALSE(bad_line);
  EXPECT_NE(bad_line.error().message().find("\"Q3\" is not the label of any variant"), std::string::npos);
  EXPECT_EQ(bad_line.error().setting(), "line");
  // A count mismatch is a clear error.
  in.labels = {"only-one"};
  auto bad = compare_results(in, {});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("1 labels for 3 results files"), std::string::npos) << bad.error().message();
  EXPECT_EQ(bad.error().setting(), "labels");
  for (const auto& p : {a, b, c}) std::filesystem::remove(p);
}

TEST(EvalCompare, ProxyFromJsonOrNumber) {
  auto n = read_proxy("0.125");
  ASSERT_TRUE(n);
  EXPECT_DOUBLE_EQ(*n->kld, 0.125);
  const std::string p = temp_path("kld.json");
  std::ofstream(p) << R"({"kld": {"mean": 0.02, "median": 0.01}, "ppl": 12.5})";
  auto j = read_proxy(p);
  ASSERT_TRUE(j) << j.error().message();
  EXPECT_DOUBLE_EQ(*j->kld, 0.02);
  EXPECT_DOUBLE_EQ(*j->ppl, 12.5);
  // pocketlm perplexity --kl-divergence -o json, as written.
  std::ofstream(p) << R"({"chunks": 8, "kl_divergence": {"kld": {"mean": 0.138, "mean_error": 0.004},)"
                      R"( "ppl": {"value": 26.5, "error": 1.2}, "same_top": {"value": 0.78}}})";
  auto ours = read_proxy(p);
  ASSERT_TRUE(ours) << ours.error().message();
  EXPECT_DOUBLE_EQ(*ours->kld, 0.138);
  EXPECT_DOUBLE_EQ(*ours->ppl, 26.5);
  std::ofstream(p) << R"({"something": 1})";
  auto bad = read_proxy(p);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("\"kld\""), std::string::npos);
  std::filesystem::remove(p);
}

TEST(EvalCompare, NiceTicks) {
  const auto t = nice_ticks(0.13, 0.87);
  EXPECT_LE(t.front(), 0.13);
  EXPECT_GE(t.back(), 0.87);
  EXPECT_NEAR(t[1] - t[0], 0.2, 1e-12);
}

// Three labelled points at one spot (pruned files of the same size): the labels go to three different
// heights; a lone point keeps its label 8 px above it.
TEST(EvalCompare, SvgLabelsDoNotOverlap) {
  SvgChart c;
  SvgSeries s;
  s.name = "score";
  s.color = "#000";
  s.markers_only = true;
  s.points = {{1, 5}, {1, 5}, {1, 5}, {3, 1}};
  s.labels = {"aaa", "bbb", "ccc", "lone"};
  c.series.push_back(s);
  const std::string svg = render_svg(c);
  auto label_y = [&](const std::string& text) {
    const size_t end = svg.find(">" + text + "</text>");
    EXPECT_NE(end, std::string::npos) << text;
    const size_t y = svg.rfind(" y=\"", end);
    return std::stod(svg.substr(y + 4));
  };
  const double a = label_y("aaa"), b = label_y("bbb"), cc = label_y("ccc");
  EXPECT_GE(std::abs(a - b), 12.0);
  EXPECT_GE(std::abs(a - cc), 12.0);
  EXPECT_GE(std::abs(b - cc), 12.0);
  const size_t circle = svg.rfind("<circle", svg.find(">lone</text>"));
  const size_t cy = svg.find("cy=\"", circle);
  EXPECT_DOUBLE_EQ(label_y("lone"), std::stod(svg.substr(cy + 4)) - 8);
}

}  // namespace
}  // namespace pocketlm
