// pocketlm imatrix: llama-imatrix's job. Runs a model over calibration data (a text, chunked as llama-imatrix
// does, or a task file rendered through the model's chat template), records every layer matmul's
// per-column sum of squared inputs, and writes llama.cpp's imatrix GGUF (or legacy .dat); --in-file merges
// existing files (with or without new data); --show-statistics prints a per-tensor table.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calibration.h"
#include "commands.h"
#include "common.h"
#include "eval/task_runner.h"
#include "eval/task_set.h"
#include "quant/imatrix.h"
#include "quant/imatrix_collect.h"
#include "tokenizer/chat_template.h"
#include "util/progress.h"
#include "util/stats.h"
#include "util/thread_pool.h"

namespace pocketlm::cli {
namespace {

struct ImatrixFlags {
  std::string model, text, output = "imatrix.gguf", output_format, chat_template;
  std::vector<std::string> tasks, in_files;
  int64_t chunks = -1, n_ctx = 512, batch = 512, task_limit = -1;
  int threads = 0;
  bool show_statistics = false, process_output = false, no_answers = false;
  bool output_given = false;
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return !a.empty() && !b.empty() && std::filesystem::equivalent(a, b, ec);
}

// The model's chat template for --tasks (or --chat-template); "" for a model without one.
Expected<std::string> task_template(const Model& model, const ImatrixFlags& f) {
  return calibration_template(model, f.chat_template, f.model, f.no_answers);
}

int run(const ImatrixFlags& f) {
  const bool collect = !f.text.empty() || !f.tasks.empty();
  if (!collect && f.in_files.empty())
    return fail(
        "nothing to do: give calibration data (-f TEXT or --tasks FILE.jsonl) and a model (-m), or imatrix "
        "files to merge (--in-file)");
  if (collect && f.model.empty()) return fail("collecting an imatrix needs the model: -m MODEL.gguf");
  const std::string format = !f.output_format.empty() ? f.output_format : (f.output.ends_with(".dat") ? "dat" : "gguf");
  for (const std::string& in : f.in_files)
    if (same_file(f.output, in)) return fail("-o " + f.output + " would overwrite the input --in-file " + in);
  if (same_file(f.output, f.model) || same_file(f.output, f.text))
    return fail("-o " + f.output + " would overwrite an input");
  const double t_start = now_seconds();

  // Files to merge, read first (llama-imatrix does the same: their datasets come first).
  std::vector<Imatrix> parts;
  std::vector<std::string> part_names;
  for (const std::string& in : f.in_files) {
    auto r = read_imatrix(in, f.n_ctx);
    if (!r) return fail(r.error().message());
    std::fprintf(stderr, "imatrix: %s: %zu entries, %lld chunks of %lld tokens%s\n", in.c_str(), r->entries.size(),
                 static_cast<long long>(r->chunk_count), static_cast<long long>(r->chunk_size),
                 r->from_legacy ? " (legacy .dat)" : "");
    parts.push_back(std::move(r).value());
    part_names.push_back(in);
  }

  std::unique_ptr<Model> model;
  if (!f.model.empty()) {
    model = load_model(f.model);
    if (!model) return 1;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (auto st = validate_imatrix(parts[i], model->gguf()); !st)
        return fail(part_names[i] + " does not fit " + f.model + ": " + st.error().message());
    }
  }

  if (collect) {
    const int64_t n_ctx_train = model->config().n_ctx_train;
    if (n_ctx_train > 0 && f.n_ctx > n_ctx_train)
      return fail("-c " + std::to_string(f.n_ctx) + " is larger than the context " + f.model + " was trained on (" +
                  std::to_string(n_ctx_train) + " tokens)");
    const Tokenizer& tok = model->tokenizer();
    ImatrixCollectOptions co;
    co.process_output = f.process_output;
    std::vector<std::vector<int32_t>> seqs;
    std::vector<std::string> datasets;
    if (!f.text.empty()) {
      std::string text;
      if (!read_text_file(f.text, text)) return 1;
      if (text.empty()) return fail(f.text + ": the file is empty");
      if (tok.add_eos())
        return fail(f.model +
                    ": the tokenizer appends EOS to every text (tokenizer.ggml.add_eos_token); chunked "
                    "calibration over a text is not defined for it (llama-imatrix refuses such models too)");
      const double t0 = now_seconds();
      const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
      std::fprintf(stderr, "imatrix: %s: %zu bytes, %zu tokens (tokenized in %.2f s)\n", f.text.c_str(), text.size(),
                   ids.size(), now_seconds() - t0);
      auto r = imatrix_text_chunks(tok, ids, f.n_ctx, f.chunks, f.text);
      if (!r) return fail(r.error().message());
      seqs = std::move(r).value();
      datasets.push_back(f.text);
    } else {
      auto set = load_task_files(f.tasks);
      if (!set) return fail(set.error().message());
      for (const auto& p : set->problems) std::fprintf(stderr, "warning: %s\n", p.c_str());
      if (set->examples.empty()) return fail("no usable examples in the --tasks file(s)");
      auto tmpl = task_template(*model, f);
      if (!tmpl) return fail(tmpl.error().message());
      const int64_t limit = f.chunks >= 0 ? f.chunks : f.task_limit;
      std::vector<CalibrationPrompt> prompts;
      for (const TaskExample& ex : set->examples)
        prompts.push_back({task_turn(ex, !f.no_answers), ex.file + ":" + std::to_string(ex.line)});
      auto r = imatrix_prompt_sequences(tok, *tmpl, prompts, f.n_ctx, limit, co.min_tokens);
      if (!r) return fail(r.error().message());
      if (r->truncated > 0)
        std::fprintf(stderr, "imatrix: note: %lld example(s) longer than -c %lld were cut to it\n",
                     static_cast<long long>(r->truncated), static_cast<long long>(f.n_ctx));
      if (r->too_short > 0)
        std::fprintf(stderr, "imatrix: note: %lld example(s) under %lld tokens were skipped\n",
                     static_cast<long long>(r->too_short), static_cast<long long>(co.min_tokens));
      seqs = std::move(r->sequences);
      datasets = f.tasks;
      std::fprintf(stderr, "imatrix: %zu task examples rendered with %s (%s)\n", seqs.size(),
                   tmpl->empty() ? "no chat template" : "the chat template",
                   f.no_answers ? "prompts only" : "prompt as the user turn, first reference as the assistant's reply");
    }
    int64_t total = 0;
    for (const auto& s : seqs) total += static_cast<int64_t>(s.size());

    ModelFlags mf;
    mf.model = f.model;
    mf.n_ctx = f.n_ctx;
    mf.threads = f.threads;
    auto session = make_session(*model, mf);
    if (!session) return 1;
    const int threads = f.threads > 0 ? f.threads : physical_cores();
    std::fprintf(stderr, "imatrix: %zu %s, %lld tokens, -c %lld, batch %lld, %d threads%s\n", seqs.size(),
                 f.text.empty() ? "examples" : "chunks", static_cast<long long>(total), static_cast<long long>(f.n_ctx),
                 static_cast<long long>(f.batch), threads, f.process_output ? ", with output.weight" : "");
    ImatrixCollector collector(co);
    Progress progress("imatrix", total, "tokens");
    const double t_eval = now_seconds();
    const Status st = collect_imatrix(*session, seqs, std::min<int64_t>(f.batch, 512), f.process_output, collector,
                                      [&](int64_t n) { progress.add(n); });
    progress.finish();
    if (!st) return fail(st.error().message());
    const double seconds = now_seconds() - t_eval;
    std::fprintf(stderr, "imatrix: %lld tokens in %.2f s (%.1f tokens/s), %zu weights recorded\n",
                 static_cast<long long>(total), seconds, static_cast<double>(total) / seconds, collector.n_entries());
    parts.push_back(collector.result(f.n_ctx, datasets));
    part_names.push_back(f.text.empty() ? "the collected data" : f.text);
  }

  Imatrix result;
  if (parts.size() == 1) {
    result = std::move(parts[0]);
  } else {
    auto m = merge_imatrices(parts, part_names);
    if (!m) return fail(m.error().message());
    result = std::move(m).value();
  }
  if (result.chunk_size <= 0) result.chunk_size = f.n_ctx;
  if (result.entries.empty()) return fail("no weight was recorded (is -c at least 16 tokens?)");
  if (!collect && f.show_statistics && !f.output_given) {
    // Like llama-imatrix --show-statistics --in-file F: a report, no output file unless -o is given.
    std::fputs(format_imatrix_statistics(result, imatrix_statistics(result)).c_str(), stdout);
    return 0;
  }

  const Status w = format == "dat" ? write_imatrix_dat(result, f.output) : write_imatrix_gguf(result, f.output);
  if (!w) return fail(w.error().message());
  std::fprintf(stderr, "imatrix: wrote %s (%s): %zu entries, %lld chunks of %lld tokens; total %.2f s\n",
               f.output.c_str(), format.c_str(), result.entries.size(), static_cast<long long>(result.chunk_count),
               static_cast<long long>(result.chunk_size), now_seconds() - t_start);
  if (f.show_statistics) std::fputs(format_imatrix_statistics(result, imatrix_statistics(result)).c_str(), stdout);
  return 0;
}

}  // namespace

void add_imatrix_command(CLI::App& root) {
  auto f = std::make_shared<ImatrixFlags>();
  CLI::App* app = root.add_subcommand(
      "imatrix", "importance matrix for quantization from calibration data (as llama-imatrix; docs/quantization.md)");
  app->add_option("-m,--model", f->model, "GGUF model to run (needed to collect; checks --in-file files when given)")
      ->check(CLI::ExistingFile);
  auto* text =
      app->add_option("-f,--file", f->text, "calibration text (e.g. wiki.train.raw)")->check(CLI::ExistingFile);
  auto* tasks = app->add_option("--tasks", f->tasks,
                                "calibration from task files (JSONL, testdata/tasks format), "
                                "each example rendered through the model's chat template")
                    ->check(CLI::ExistingFile);
  text->excludes(tasks);
  app->add_option("--chunks", f->chunks, "use at most N chunks (with --tasks: N examples); -1 = all")
      ->capture_default_str();
  app->add_option("-c,--ctx-size", f->n_ctx, "tokens per chunk (with --tasks: the most kept of an example)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  app->add_option("-b,--batch-size", f->batch, "tokens per forward call (at most 512)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{512}));
  app->add_option("-t,--threads", f->threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  app->add_option("-o,--output", f->output, "output file")->capture_default_str();
  app->add_option("--output-format", f->output_format, "gguf | dat (default: dat for a .dat name, else gguf)")
      ->check(CLI::IsMember({"gguf", "dat"}));
  app->add_option("--in-file", f->in_files, "imatrix file(s) to merge in (GGUF or legacy .dat); may be repeated")
      ->check(CLI::ExistingFile);
  app->add_flag("--show-statistics", f->show_statistics, "print per-tensor statistics of the result");
  app->add_flag("--process-output", f->process_output, "also record output.weight (the lm_head)");
  app->add_flag("--no-answers", f->no_answers, "with --tasks: render only the prompts, not the reference answers");
  app->add_option("--chat-template", f->chat_template,
                  "with --tasks: template name or Jinja source (default: the model's)");
  app->footer(
      "examples:\n"
      "  pocketlm imatrix -m model-f16.gguf -f wiki.train.raw -c 512 --chunks 100 -o imatrix.gguf\n"
      "  pocketlm imatrix -m model-f16.gguf --tasks my-workload.jsonl -o imatrix.gguf\n"
      "  pocketlm imatrix --in-file a.gguf --in-file b.gguf -o merged.gguf --show-statistics\n"
      "  pocketlm quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M --imatrix imatrix.gguf");
  app->callback([f, app] {
    f->output_given = app->get_option("--output")->count() > 0;
    const int rc = run(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
