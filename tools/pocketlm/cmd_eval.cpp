// pocketlm eval: end-task evaluation (summaries, translations, commit messages) with resumable per-example
// results, and `eval compare` over several results files (bootstrap intervals, wins, disagreement with
// KLD/perplexity, markdown/JSON/SVG). See docs/evaluation-tasks.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "commands.h"
#include "common.h"
#include "eval/compare.h"
#include "eval/metrics_bleu.h"
#include "eval/metrics_chrf.h"
#include "eval/results.h"
#include "eval/svg_plot.h"
#include "eval/task_runner.h"
#include "eval/task_set.h"
#include "tokenizer/chat_template.h"
#include "util/atomic_file.h"
#include "util/progress.h"
#include "util/stats.h"

namespace pocketlm::cli {
namespace {

struct EvalFlags {
  ModelFlags model;
  DraftFlags draft;
  std::vector<std::string> tasks;
  int64_t limit = 0;
  std::string output;
  std::string chat_template;
  int max_tokens = 0;
};

std::string default_output(const std::string& model) {
  return std::filesystem::path(model).stem().string() + ".eval.jsonl";
}

// Per-task means over the records of this task set, corpus chrF/BLEU for translations, and timing.
void print_summary(const std::vector<TaskExample>& examples, const std::map<std::string, ResultRecord>& done,
                   double wall, int64_t run_tokens, double run_gen_seconds, int64_t n_new, int64_t n_failed) {
  struct Acc {
    std::vector<std::string> metrics;
    std::map<std::string, double> sum;
    int64_t n = 0, tokens = 0;
    double seconds = 0;
    std::vector<std::string> hyps;
    std::vector<std::vector<std::string>> refs;
    bool translate = false;
  };
  std::vector<std::string> order;
  std::map<std::string, Acc> acc;
  for (const auto& ex : examples) {
    auto it = done.find(ex.key());
    if (it == done.end()) continue;
    if (!acc.count(ex.task)) {
      order.push_back(ex.task);
      acc[ex.task].metrics = task_metric_names(ex.kind);
      acc[ex.task].translate = ex.kind == TaskKind::Translate;
    }
    Acc& a = acc[ex.task];
    for (const auto& [k, v] : it->second.scores) a.sum[k] += v;
    ++a.n;
    a.tokens += it->second.tokens;
    a.seconds += it->second.seconds;
    if (a.translate) {
      a.hyps.push_back(it->second.output);
      a.refs.push_back(ex.references);
    }
  }
  std::printf(
      "\n| task | n | scores (mean, 0-100) | corpus | tokens | tokens/s incl. prompt "
      "|\n|---|---:|---|---|---:|---:|\n");
  for (const auto& t : order) {
    const Acc& a = acc[t];
    std::string scores;
    for (const auto& m : a.metrics) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s %.2f", scores.empty() ? "" : ", ", m.c_str(),
                    a.sum.count(m) ? a.sum.at(m) / static_cast<double>(a.n) : 0.0);
      scores += buf;
    }
    std::string corpus = "-";
    if (a.translate) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "chrF2 %.2f, BLEU %.2f", corpus_chrf(a.hyps, a.refs), corpus_bleu(a.hyps, a.refs));
      corpus = buf;
    }
    std::printf("| %s | %lld | %s | %s | %lld | %.1f |\n", t.c_str(), static_cast<long long>(a.n), scores.c_str(),
                corpus.c_str(), static_cast<long long>(a.tokens),
                a.seconds > 0 ? static_cast<double>(a.tokens) / a.seconds : 0.0);
  }
  std::printf("\nthis run: %lld examples in %s wall, %lld tokens generated, %.2f t/s (prompt + generation time)%s\n",
              static_cast<long long>(n_new), Progress::format_duration(wall).c_str(),
              static_cast<long long>(run_tokens),
              run_gen_seconds > 0 ? static_cast<double>(run_tokens) / run_gen_seconds : 0.0,
              n_failed ? (", " + std::to_string(n_failed) + " examples failed (see above)").c_str() : "");
}

int eval_run(const EvalFlags& f) {
  if (f.model.model.empty()) {
    std::fprintf(stderr, "error: eval needs -m MODEL (or the subcommand `eval compare`)\n");
    return 1;
  }
  if (f.tasks.empty()) {
    std::fprintf(stderr, "error: eval needs --tasks FILE.jsonl[,FILE2...]\n");
    return 1;
  }
  auto set = load_task_files(f.tasks, f.limit);
  if (!set) {
    print_error(set.error());
    return 1;
  }
  for (const auto& p : set->problems) std::fprintf(stderr, "warning: %s\n", p.c_str());
  if (set->examples.empty()) {
    std::fprintf(stderr, "error: no usable examples in %zu task file(s)\n", f.tasks.size());
    return 1;
  }
  const double t_start = now_seconds();
  auto model = load_model(f.model.model);
  if (!model) return 1;
  std::unique_ptr<DraftSource> draft;
  std::unique_ptr<Session> session;
  if (!make_draft_and_session(*model, f.model, f.draft, draft, session)) return 1;
  std::string tmpl = f.chat_template;
  if (tmpl.empty()) {
    auto t = model->gguf().get_string_or("tokenizer.chat_template", "");
    if (t) tmpl = *t;
    if (tmpl.empty())
      std::fprintf(stderr,
                   "note: %s has no chat template; prompts are completion-style text (docs/evaluation-tasks.md)\n",
                   f.model.model.c_str());
  }
  if (!tmpl.empty()) {
    auto probe = apply_chat_template(tmpl, {{"user", "x"}}, true);
    if (!probe) {
      print_error(probe.error());
      return 1;
    }
  }
  ResultsHeader header = describe_model(model->gguf());
  header.model = f.model.model;
  header.chat_template = tmpl.empty() ? "none" : detect_chat_template(tmpl);
  if (header.chat_template.empty()) header.chat_template = "custom";
  header.max_tokens = f.max_tokens;
  const std::string out_path = f.output.empty() ? default_output(f.model.model) : f.output;
  std::vector<ResultRecord> existing;
  std::vector<std::string> notes;
  auto log = ResultsLog::open(out_path, header, existing, notes);
  if (!log) {
    print_error(log.error());
    return 1;
  }
  for (const auto& n : notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::map<std::string, ResultRecord> done;
  for (auto& r : existing) done.emplace(r.key, std::move(r));
  std::vector<const TaskExample*> todo;
  for (const auto& ex : set->examples)
    if (!done.count(ex.key())) todo.push_back(&ex);
  std::fprintf(stderr, "eval: %zu examples (%zu already in %s), %zu to run; model %s, %.2f bits/weight, template %s\n",
               set->examples.size(), set->examples.size() - todo.size(), out_path.c_str(), todo.size(),
               f.model.model.c_str(), header.bits_per_weight, header.chat_template.c_str());

  TaskRunner runner(*model, *session, tmpl);
  runner.set_draft(draft.get(), f.draft.params);
  int64_t run_tokens = 0, n_new = 0, n_failed = 0;
  double run_seconds = 0;
  {
    Progress progress("eval", static_cast<int64_t>(todo.size()), "examples");
    for (const TaskExample* ex : todo) {
      auto r = runner.run(*ex, f.max_tokens);
      if (!r) {
        std::fprintf(stderr, "\nerror: %s:%lld (%s): %s; skipped\n", ex->file.c_str(), static_cast<long long>(ex->line),
                     ex->id.c_str(), r.error().message().c_str());
        ++n_failed;
        progress.add();
        continue;
      }
      ResultRecord rec;
      rec.key = ex->key();
      rec.id = ex->id;
      rec.task = ex->task;
      rec.kind = std::string(task_kind_name(ex->kind));
      rec.output = r->output;
      rec.stop = r->stop;
      rec.scores = score_output(*ex, r->output);
      rec.prompt_tokens = r->prompt_tokens;
      rec.tokens = r->tokens;
      rec.seconds = r->seconds;
      if (auto st = log->append(rec); !st) {
        std::fprintf(stderr, "\nerror: %s\n", st.error().message().c_str());
        return 1;
      }
      run_tokens += r->tokens;
      run_seconds += r->seconds;
      ++n_new;
      done.emplace(rec.key, std::move(rec));
      progress.add();
    }
  }
  print_summary(set->examples, done, now_seconds() - t_start, run_tokens, run_seconds, n_new, n_failed);
  if (draft) std::printf("%s\n", draft_summary(runner.draft_stats()).c_str());
  std::printf("results: %s\n", out_path.c_str());
  return n_failed > 0 && n_new == 0 && todo.size() > 0 ? 1 : 0;
}

struct CompareFlags {
  std::vector<std::string> results, labels, kld, bpw;
  std::vector<std::string> line;
  std::string markdown, json, svg, x_axis = "bpw";
  int resamples = kDefaultBootstrapResamples;
  uint64_t seed = kDefaultBootstrapSeed;
};

Status write_atomic(const std::string& path, const std::string& text) {
  PLM_TRY(AtomicFile f, AtomicFile::create(path));
  PLM_CHECK(f.write(text.data(), text.size()));
  return f.commit();
}

int eval_compare(const CompareFlags& f) {
  CompareInputs in;
  in.results = f.results;
  in.labels = f.labels;
  in.kld = f.kld;
  in.bits_per_weight = f.bpw;
  CompareOptions opt;
  opt.resamples = f.resamples;
  opt.seed = f.seed;
  opt.x_axis = f.x_axis;
  opt.line = f.line;
  auto rep = compare_results(in, opt);
  if (!rep) {
    print_error(rep.error());
    return 1;
  }
  for (const auto& n : rep->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  const std::string md = report_markdown(*rep);
  std::fwrite(md.data(), 1, md.size(), stdout);
  const std::pair<const std::string*, std::string> outs[] = {{&f.markdown, md},
                                                             {&f.json, f.json.empty() ? "" : report_json(*rep)},
                                                             {&f.svg, f.svg.empty() ? "" : report_svg(*rep)}};
  for (const auto& [path, text] : outs) {
    if (path->empty()) continue;
    if (auto st = write_atomic(*path, text); !st) {
      print_error(st.error());
      return 1;
    }
    std::fprintf(stderr, "wrote %s\n", path->c_str());
  }
  return 0;
}

// `pocketlm eval plot`: a scatter/line chart of given points (eval/svg_plot.h), e.g. KLD against bits per weight
// for quantized variants (scripts/quant-outliers-quality.sh). Each --series is "NAME=x:y[:label],x:y[:label],...".
struct PlotFlags {
  std::vector<std::string> series;
  std::string svg, title, x_label = "bits per weight", y_label = "mean KLD vs base";
};

int eval_plot(const PlotFlags& f) {
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  SvgChart c;
  c.title = f.title;
  c.x_label = f.x_label;
  c.y_label = f.y_label;
  for (const std::string& spec : f.series) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "error: --series '%s': expected NAME=x:y[:label],x:y[:label],...\n", spec.c_str());
      return 1;
    }
    SvgSeries s;
    s.name = spec.substr(0, eq);
    s.color = kColors[c.series.size() % (sizeof kColors / sizeof kColors[0])];
    std::vector<std::tuple<double, double, std::string>> pts;
    size_t at = eq + 1;
    while (at <= spec.size()) {
      const size_t end = std::min(spec.find(',', at), spec.size());
      const std::string p = spec.substr(at, end - at);
      const size_t c1 = p.find(':'), c2 = c1 == std::string::npos ? c1 : p.find(':', c1 + 1);
      char* e1 = nullptr;
      char* e2 = nullptr;
      const std::string xs = p.substr(0, c1), ys = c1 == std::string::npos ? "" : p.substr(c1 + 1, c2 - c1 - 1);
      const double x = std::strtod(xs.c_str(), &e1), y = std::strtod(ys.c_str(), &e2);
      if (xs.empty() || ys.empty() || *e1 != '\0' || *e2 != '\0' || !std::isfinite(x) || !std::isfinite(y)) {
        std::fprintf(stderr, "error: --series '%s': point '%s' is not x:y[:label] with finite numbers\n",
                     s.name.c_str(), p.c_str());
        return 1;
      }
      pts.emplace_back(x, y, c2 == std::string::npos ? "" : p.substr(c2 + 1));
      at = end + 1;
    }
    std::sort(pts.begin(), pts.end());  // a line from left to right
    for (const auto& [x, y, label] : pts) {
      s.points.emplace_back(x, y);
      s.labels.push_back(label);
    }
    c.series.push_back(std::move(s));
  }
  if (auto st = write_atomic(f.svg, render_svg(c)); !st) {
    print_error(st.error());
    return 1;
  }
  std::fprintf(stderr, "wrote %s\n", f.svg.c_str());
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& root) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* app =
      root.add_subcommand("eval", "end-task evaluation: summaries, translations, commit messages (resumable)");
  app->add_option("-m,--model", f->model.model, "GGUF model file")->check(CLI::ExistingFile);
  app->add_option("-c,--ctx-size", f->model.n_ctx, "context size in tokens")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 20));
  app->add_option("-t,--threads", f->model.threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  app->add_option("--tasks", f->tasks, "task files (JSONL), comma-separated")->delimiter(',')->check(CLI::ExistingFile);
  app->add_option("--limit", f->limit, "first N examples of each task file (0 = all)")->check(CLI::NonNegativeNumber);
  app->add_option("-o,--output", f->output, "results file (JSONL; resumed if it exists; default MODEL.eval.jsonl)");
  app->add_option("--max-tokens", f->max_tokens, "maximum generated tokens per example (default: per task)")
      ->check(CLI::Range(1, 1 << 16));
  app->add_option("--chat-template", f->chat_template, "template name or Jinja source overriding the model's");
  add_draft_flags(*app, f->draft);

  auto cf = std::make_shared<CompareFlags>();
  CLI::App* cmp = app->add_subcommand("compare", "compare eval results of several variants of a model");
  cmp->add_option("results", cf->results, "results files of `pocketlm eval` (two or more)")
      ->required()
      ->check(CLI::ExistingFile);
  cmp->add_option("--labels", cf->labels, "variant labels, comma-separated (default: file names)")->delimiter(',');
  cmp->add_option("--kld", cf->kld,
                  "per variant: a KLD/perplexity JSON file or a number (mean KLD vs the base), comma-separated")
      ->delimiter(',');
  cmp->add_option("--bits-per-weight", cf->bpw,
                  "per variant: bits/weight overriding the results header, comma-separated")
      ->delimiter(',');
  cmp->add_option("--x", cf->x_axis, "plot x axis: bpw | size")
      ->capture_default_str()
      ->check(CLI::IsMember({"bpw", "size"}));
  cmp->add_option("--line", cf->line,
                  "labels of the variants the plot joins by a line, comma-separated (default: all); the others are "
                  "single points")
      ->delimiter(',');
  cmp->add_option("-o,--output", cf->markdown, "write the markdown report here (it is always printed)");
  cmp->add_option("--json", cf->json, "write the report as JSON");
  cmp->add_option("--svg", cf->svg, "write the plot as SVG");
  cmp->add_option("--resamples", cf->resamples, "bootstrap resamples")
      ->capture_default_str()
      ->check(CLI::Range(100, 1000000));
  cmp->add_option("--seed", cf->seed, "bootstrap seed")->capture_default_str();
  cmp->callback([cf] {
    const int rc = eval_compare(*cf);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
  auto pf = std::make_shared<PlotFlags>();
  CLI::App* plot = app->add_subcommand("plot", "plot points (e.g. KLD against bits per weight) as an SVG chart");
  plot->add_option("--series", pf->series, "a line: NAME=x:y[:label],x:y[:label],... (repeatable)")->required();
  plot->add_option("--svg", pf->svg, "the SVG file to write")->required();
  plot->add_option("--title", pf->title, "chart title");
  plot->add_option("--x-label", pf->x_label, "x axis label")->capture_default_str();
  plot->add_option("--y-label", pf->y_label, "y axis label")->capture_default_str();
  plot->callback([pf] {
    const int rc = eval_plot(*pf);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
  app->callback([f, app] {
    if (app->got_subcommand("compare") || app->got_subcommand("plot")) return;
    const int rc = eval_run(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
