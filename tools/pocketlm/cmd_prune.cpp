// pocketlm prune IN.gguf OUT.gguf: structured pruning (drop blocks, heads, FFN channels) judged on calibration
// data, optionally repaired by least squares (src/prune, docs/pruning.md). Flag parsing and calibration input
// only: the plan and the file are the library's.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "eval/task_runner.h"
#include "eval/task_set.h"
#include "prune/prune_model.h"
#include "quant/imatrix_collect.h"
#include "util/progress.h"

namespace pocketlm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted.store(true); }

struct PruneFlags {
  std::vector<std::string> args;  // IN OUT (or IN with --dry-run)
  std::string drop_layers, score = "angular", calib, tasks;
  int64_t layers = -1, calib_tokens = 4096, calib_ctx = 512, ffn_multiple = 0;
  double heads_keep = 1.0, ffn_keep = 1.0;
  bool repair = false, dry_run = false, quiet = false;
  int threads = 0;
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

// "3,5,7-9" -> {3, 5, 7, 8, 9}
Expected<std::vector<int64_t>> parse_layer_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const size_t dash = item.find('-', 1);
      const int64_t a = std::stoll(item.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? item.size() : dash)) throw std::invalid_argument(item);
      int64_t b = a;
      if (dash != std::string::npos) {
        b = std::stoll(item.substr(dash + 1), &used);
        if (used != item.size() - dash - 1 || b < a) throw std::invalid_argument(item);
      }
      for (int64_t l = a; l <= b; ++l) out.push_back(l);
    } catch (const std::exception&) {
      return Error("--drop-layers '" + s + "': '" + item + "' is not a layer index or range (e.g. 3,5,7-9)");
    }
  }
  if (out.empty()) return Error("--drop-layers '" + s + "': no layers");
  return out;
}

Expected<std::vector<std::vector<int32_t>>> calibration(const Model& model, const PruneFlags& f) {
  const Tokenizer& tok = model.tokenizer();
  if (!f.calib.empty()) {
    std::string text;
    if (!read_text_file(f.calib, text)) return Error(f.calib + ": cannot read");
    if (text.empty()) return Error(f.calib + ": the file is empty");
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
    return imatrix_text_chunks(tok, ids, f.calib_ctx, std::max<int64_t>(1, f.calib_tokens / f.calib_ctx), f.calib);
  }
  PLM_TRY(TaskSet set, load_task_files({f.tasks}));
  std::string tmpl;
  if (auto t = model.gguf().get_string_or("tokenizer.chat_template", "")) tmpl = *t;
  std::vector<CalibrationPrompt> prompts;
  for (const TaskExample& ex : set.examples)
    prompts.push_back({task_turn(ex, true), ex.file + ":" + std::to_string(ex.line)});
  PLM_TRY(PromptSequences r, imatrix_prompt_sequences(tok, tmpl, prompts, f.calib_ctx, -1, 1));
  std::vector<std::vector<int32_t>> seqs;
  int64_t total = 0;
  for (auto& s : r.sequences) {
    if (total >= f.calib_tokens) break;
    total += static_cast<int64_t>(s.size());
    seqs.push_back(std::move(s));
  }
  return seqs;
}

int prune(const PruneFlags& f) {
  if (f.args.size() != 2 && !(f.args.size() == 1 && f.dry_run))
    return fail("usage: pocketlm prune IN.gguf OUT.gguf [options] (IN.gguf alone with --dry-run)");
  const std::string in_path = f.args[0], out_path = f.args.size() == 2 ? f.args[1] : "";
  PruneOptions o;
  if (!f.drop_layers.empty()) {
    auto l = parse_layer_list(f.drop_layers);
    if (!l) return fail(l.error().message());
    o.drop_layers = std::move(*l);
  }
  o.keep_layers = f.layers;
  o.score = f.score == "bi" ? LayerScore::Bi : LayerScore::Angular;
  o.heads_keep = f.heads_keep;
  o.ffn_keep = f.ffn_keep;
  o.ffn_multiple = f.ffn_multiple;
  o.repair = f.repair;
  o.progress = !f.quiet;
  o.cancel = &g_interrupted;
  if (!out_path.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path out(out_path);
    const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
    if (fs::is_directory(out, ec)) return fail(out_path + ": is a directory (give the output file's name)");
    if (!fs::is_directory(dir, ec)) return fail(out_path + ": the directory " + dir.string() + " does not exist");
    if (fs::equivalent(in_path, out_path, ec)) return fail(out_path + ": is the input file");
  }

  ModelLoadOptions lo;
  lo.decode_layout = false;  // the calibration pass reads the file's own rows
  auto model = Model::load(in_path, lo);
  if (!model) {
    print_error(model.error());
    return 1;
  }
  if (auto st = check_prunable(**model, o); !st) {
    print_error(st.error());
    return 1;
  }
  const bool have_calib = !f.calib.empty() || !f.tasks.empty();
  if (prune_needs_calibration(o) && !have_calib)
    return fail(
        "--layers, --heads-keep, --ffn-keep and --repair choose by calibration scores: give --calib TEXT or --tasks "
        "FILE.jsonl");
  std::optional<PruneStats> stats;
  if (have_calib) {
    auto seqs = calibration(**model, f);
    if (!seqs) return fail(seqs.error().message());
    int64_t total = 0;
    for (const auto& s : *seqs) total += static_cast<int64_t>(s.size());
    PruneStatsOptions so;
    so.gram = o.repair;
    so.n_threads = f.threads;
    std::unique_ptr<Progress> bar = f.quiet ? nullptr : std::make_unique<Progress>("calibration", total, "tokens");
    auto st = collect_prune_stats(**model, *seqs, so, [&](int64_t n) {
      if (bar) bar->add(n);
    });
    if (bar) bar->finish();
    if (!st) return fail(st.error().message());
    stats = std::move(*st);
  }
  PruneOptions first = o;
  first.repair = false;  // the blocks to drop are known only after the first pass
  auto plan = plan_pruning(**model, stats ? &*stats : nullptr, o.repair ? first : o);
  if (plan && o.repair) {
    plan->repair = true;
    if (const auto runs = absorb_runs(**model, *plan); !runs.empty()) {
      // A second pass for what the dropped blocks add to the residual stream (the repair folds it in).
      PruneStatsOptions so;
      so.gram = true;
      so.absorb = runs;
      so.n_threads = f.threads;
      auto seqs = calibration(**model, f);
      if (!seqs) return fail(seqs.error().message());
      int64_t total = 0;
      for (const auto& s : *seqs) total += static_cast<int64_t>(s.size());
      std::unique_ptr<Progress> bar =
          f.quiet ? nullptr : std::make_unique<Progress>("calibration (repair)", total, "tokens");
      auto st = collect_prune_stats(**model, *seqs, so, [&](int64_t n) {
        if (bar) bar->add(n);
      });
      if (bar) bar->finish();
      if (!st) return fail(st.error().message());
      stats = std::move(*st);
    }
    plan = plan_pruning(**model, &*stats, o);
  }
  if (!plan) {
    print_error(plan.error());
    return 1;
  }
  std::printf("%s", format_prune_plan(*plan).c_str());
  if (f.dry_run) {
    std::printf("dry run: nothing written\n");
    return 0;
  }
  auto old_int = std::signal(SIGINT, on_interrupt);
  auto old_term = std::signal(SIGTERM, on_interrupt);
  auto r = write_pruned_model(**model, *plan, stats ? &*stats : nullptr, o, out_path);
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (!r) {
    if (g_interrupted.load()) {
      fail("interrupted: " + out_path + " was not written");
      return 130;
    }
    print_error(r.error().with_context("(" + out_path + " was not written)"));
    return 1;
  }
  std::printf("wrote %s: %s, %.2f s\n", out_path.c_str(), human_bytes(static_cast<double>(r->file_bytes)).c_str(),
              r->seconds);
  return 0;
}

}  // namespace

void add_prune_command(CLI::App& root) {
  auto f = std::make_shared<PruneFlags>();
  CLI::App* app =
      root.add_subcommand("prune",
                          "structured pruning: drop layers, attention heads (per KV group) and FFN channels, chosen on "
                          "calibration data; llama.cpp loads the output (docs/pruning.md)");
  app->add_option("args", f->args, "IN.gguf OUT.gguf (OUT.gguf may be left out with --dry-run)")
      ->required()
      ->expected(1, 2);
  auto* drop = app->add_option("--drop-layers", f->drop_layers, "blocks to drop, e.g. 3,5,7-9");
  auto* layers = app->add_option("--layers", f->layers, "keep N blocks, dropping the most redundant ones by --score")
                     ->check(CLI::Range(int64_t{1}, int64_t{512}));
  drop->excludes(layers);
  app->add_option("--score", f->score,
                  "layer redundancy: angular (the contiguous run whose input and output are "
                  "closest) or bi (the blocks of lowest 1 - cos, each alone)")
      ->check(CLI::IsMember({"angular", "bi"}));
  app->add_option("--heads-keep", f->heads_keep, "fraction of attention heads kept (per KV group, or whole groups)")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--ffn-keep", f->ffn_keep, "fraction of FFN channels kept")->check(CLI::Range(0.0, 1.0));
  app->add_option("--ffn-multiple", f->ffn_multiple, "FFN width multiple (default: 256 when n_ff allows, else 32 or 1)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  auto* calib =
      app->add_option("--calib", f->calib, "calibration text (e.g. wiki.train.raw)")->check(CLI::ExistingFile);
  auto* tasks = app->add_option("--tasks", f->tasks, "calibration from a task file (JSONL): prompts with their answers")
                    ->check(CLI::ExistingFile);
  calib->excludes(tasks);
  app->add_option("--calib-tokens", f->calib_tokens, "calibration tokens (default 4096)")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 24));
  app->add_option("--calib-ctx", f->calib_ctx, "tokens per calibration sequence (default 512)")
      ->check(CLI::Range(int64_t{8}, int64_t{1} << 20));
  app->add_flag("--repair", f->repair, "refit ffn_down / attn_output by least squares on the calibration activations");
  app->add_flag("--dry-run", f->dry_run, "print the plan (what goes, scores, bytes saved); write nothing");
  app->add_option("-t,--threads", f->threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  app->add_flag("-q,--quiet", f->quiet, "no progress lines");
  app->footer(
      "examples:\n"
      "  pocketlm prune model-f32.gguf pruned.gguf --layers 28 --calib wiki.train.raw --dry-run\n"
      "  pocketlm prune model-f32.gguf pruned.gguf --ffn-keep 0.75 --heads-keep 0.75 --calib wiki.train.raw --repair\n"
      "  pocketlm quantize pruned.gguf pruned-Q4_K_M.gguf Q4_K_M");
  app->callback([f] {
    const int rc = prune(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
