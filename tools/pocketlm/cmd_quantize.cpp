// pocketlm quantize IN.gguf OUT.gguf TYPE|RECIPE: llama-quantize's job (same recipes, file types and
// fallbacks) with pocketlm's encoders, per-tensor rules, a dry run and a per-tensor error table.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "calibration.h"
#include "commands.h"
#include "common.h"
#include "formats/quantize.h"
#include "quant/imatrix.h"
#include "quant/methods/method.h"
#include "quant/methods/outliers.h"
#include "quant/quantize_model.h"
#include "util/stats.h"
#include "util/thread_pool.h"

namespace pocketlm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted.store(true); }

struct QuantizeFlags {
  std::vector<std::string> args;  // IN OUT TARGET (or IN TARGET with --dry-run)
  std::string imatrix, rules, token_embedding_type, output_tensor_type;
  bool dry_run = false, hot_fp16 = false, pure = false, quiet = false;
  int threads = 0;
  // Methods that see the activations (quant/methods/method.h).
  std::string method, calib, calib_cache;
  std::vector<std::string> tasks;
  int64_t calib_tokens = 16384, calib_ctx = 512;
  double smooth = -1, gptq_damp = 0.1;
  int64_t outliers = 0;         // --outliers K
  bool outliers_given = false;  // --outliers was on the command line (so 0 is an error, not "none")
  int awq_grid = 11;
  std::string search = "fast";
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

std::optional<GgmlType> parse_type_flag(const std::string& flag, const std::string& value, std::string& err) {
  if (value.empty()) return std::nullopt;
  const std::optional<GgmlType> t = type_from_name(value);
  if (!t || !can_quantize(*t)) {
    err = flag + ": unknown or unwritable tensor type '" + value +
          "' (types: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K iq4_nl iq4_xs; pocketlm-only, "
          "which llama.cpp cannot read: q4_0_g64 q4_0_g128)";
    return std::nullopt;
  }
  return t;
}

int quantize(const QuantizeFlags& f) {
  std::string in_path, out_path, target;
  if (f.args.size() == 3) {
    in_path = f.args[0];
    out_path = f.args[1];
    target = f.args[2];
  } else if (f.args.size() == 2 && f.dry_run) {
    in_path = f.args[0];
    target = f.args[1];
  } else {
    return fail("usage: pocketlm quantize IN.gguf OUT.gguf TYPE|RECIPE [options] (IN.gguf TYPE|RECIPE with --dry-run)");
  }

  QuantizeOptions o;
  o.target = target;
  o.pure = f.pure;
  o.n_threads = f.threads;
  if (auto s = parse_quant_search(f.search))
    o.search = *s;
  else
    return fail("--search: '" + f.search + "' is not fast, exact or nearest");
  o.progress = !f.quiet;
  o.cancel = &g_interrupted;
  if (f.hot_fp16) o.token_embedding_type = o.output_tensor_type = GgmlType::F16;
  std::string err;
  if (auto t = parse_type_flag("--token-embedding-type", f.token_embedding_type, err)) o.token_embedding_type = t;
  if (!err.empty()) return fail(err);
  if (auto t = parse_type_flag("--output-tensor-type", f.output_tensor_type, err)) o.output_tensor_type = t;
  if (!err.empty()) return fail(err);
  if (!f.rules.empty()) {
    auto rules = read_quantize_rules(f.rules);
    if (!rules) return fail(rules.error().message());
    o.rules = std::move(*rules);
  }

  // Output checks that would otherwise fail only after all the work.
  if (!f.dry_run) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path out(out_path);
    const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
    if (fs::is_directory(out, ec)) return fail(out_path + ": is a directory (give the output file's name)");
    if (!fs::is_directory(dir, ec)) return fail(out_path + ": the directory " + dir.string() + " does not exist");
  }

  auto in = GgufFile::open(in_path);
  if (!in) return fail(in.error().message());
  std::optional<Imatrix> im;
  if (!f.imatrix.empty()) {
    auto r = read_imatrix(f.imatrix);
    if (!r) return fail(r.error().message());
    im = std::move(*r);
    o.imatrix = &*im;
    o.imatrix_path = f.imatrix;
  }

  // The method, and the calibration statistics it needs (collected by running IN, or read from the cache).
  QuantMethod method = QuantMethod::Rtn;
  if (!f.method.empty()) {
    auto m = parse_quant_method(f.method);
    if (!m) return fail(m.error().message());
    method = *m;
  } else if (!f.calib.empty() || !f.tasks.empty()) {
    method = QuantMethod::Imatrix;
  }
  if (o.search == QuantSearch::nearest &&
      (method != QuantMethod::Rtn || !f.imatrix.empty() || f.smooth >= 0 || f.outliers_given))
    return fail(
        "--search nearest is llama-quantize's plain rounding: it takes no imatrix, calibration, --method "
        "other than rtn, --smooth or --outliers (those steer a search)");
  const bool smooth = f.smooth >= 0;
  const bool outliers = f.outliers_given;
  if (outliers && (f.outliers < 1 || f.outliers > kMaxOutlierColumns))
    return fail("--outliers " + std::to_string(f.outliers) + ": K must be 1 to " + std::to_string(kMaxOutlierColumns) +
                " (and at most half of a matrix's inputs)");
  if (outliers && f.calib.empty() && f.tasks.empty())
    return fail("--outliers " + std::to_string(f.outliers) +
                " needs calibration data: --calib FILE (plain text) or --tasks FILE.jsonl (the outlier channels are "
                "chosen by their activations)");
  const bool needs_calib = method_needs_calibration(method, smooth) || outliers;
  if (!needs_calib && (!f.calib.empty() || !f.tasks.empty()))
    return fail("--calib / --tasks: --method rtn does not use calibration data");
  std::optional<CalibStats> stats;
  PreparedMethod prepared;
  const int threads = f.threads > 0 ? f.threads : physical_cores();
  auto pool = shared_thread_pool(threads);
  if (needs_calib) {
    if (f.calib.empty() && f.tasks.empty())
      return fail("--method " + std::string(quant_method_name(method)) + (smooth ? " with --smooth" : "") +
                  " needs calibration data: --calib FILE (plain text) or --tasks FILE.jsonl");
    if (!f.dry_run || method_uses_awq(method) || outliers) {
      if (auto st = check_finite_weights(*in); !st)
        return fail(st.error().message() + " (" + out_path + " was not written)");
      auto model = load_model(in_path);
      if (!model) return 1;
      const int64_t chunks = std::max<int64_t>(1, f.calib_tokens / f.calib_ctx);
      auto data = calibration_input(*model, in_path, f.calib, f.tasks, f.calib_ctx, chunks, 16);
      if (!data) return fail(data.error().message() + " (" + out_path + " was not written)");
      ModelFlags mf;
      mf.model = in_path;
      mf.n_ctx = f.calib_ctx;
      mf.threads = f.threads;
      auto session = make_session(*model, mf);
      if (!session) return 1;
      CalibrationRequest req;
      req.sequences = data->sequences;
      req.data_name = data->name;
      req.cache_path = f.calib_cache;
      req.gram = true;  // one cache serves every method
      req.progress = !f.quiet;
      bool cached = false;
      std::string cache_used;
      const double t0 = now_seconds();
      auto s = calibration_stats(*in, *session, req, *pool, &cached, &cache_used);
      if (!s) return fail(s.error().message() + " (" + out_path + " was not written)");
      stats = std::move(*s);
      if (!f.quiet)
        std::fprintf(stderr, "calibration: %s, %lld tokens, %zu inputs: %s %s (%.1f s)\n", stats->data_name.c_str(),
                     static_cast<long long>(stats->n_tokens), stats->inputs.size(),
                     cached ? "read from" : "collected and cached in", cache_used.c_str(), now_seconds() - t0);
    }
  }
  AwqOptions awq;
  awq.grid = f.awq_grid;
  awq.search = o.search;
  o.gptq.damp = f.gptq_damp;
  if (stats || !method_needs_calibration(method, smooth)) {
    if (auto st = prepare_method(*in, method, stats ? &*stats : nullptr, f.smooth, awq, o, prepared, *pool); !st)
      return fail(st.error().message() + " (" + out_path + " was not written)");
    if (!f.quiet && method_uses_awq(method)) {
      int scaled = 0;
      double before = 0, after = 0;
      for (const auto& g : prepared.awq)
        scaled += g.alpha > 0 ? 1 : 0, before += g.error_before, after += g.error_after;
      std::fprintf(stderr, "awq: %d of %zu groups rescaled; sampled output error %.4g -> %.4g (%.1f s)\n", scaled,
                   prepared.awq.size(), before, after, prepared.seconds);
    }
  }

  o.outliers = f.outliers;
  o.outlier_stats = stats ? &*stats : nullptr;
  auto plan = plan_quantization(*in, o);
  if (!plan) return fail(plan.error().message());
  for (const std::string& w : plan->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());

  // pocketlm-only types (q4_0_g64, ...) make a file llama.cpp-based tools refuse: say so, whatever asked for them.
  std::string only;
  for (const std::string& t : plan->pocketlm_only_types()) only += (only.empty() ? "" : ", ") + t;
  if (f.dry_run) {
    std::printf("%s", format_quantize_plan(*plan).c_str());
    if (!only.empty() && !f.quiet)
      std::fprintf(stderr,
                   "note: the plan uses pocketlm-only tensor types (%s): llama.cpp-based tools could not "
                   "read the output\n",
                   only.c_str());
    std::printf("dry run: nothing written\n");
    return 0;
  }
  if (!f.quiet) {
    for (const auto& t : plan->tensors) {
      if (t.fallback) std::fprintf(stderr, "note: %s: %s\n", t.name.c_str(), t.reason.c_str());
    }
  }

  // Ctrl-C (or SIGTERM) stops at the next tensor or row chunk: the temporary file is removed and OUT does not
  // appear. A file-size limit (ulimit -f) becomes a write error instead of killing the process.
  auto old_int = std::signal(SIGINT, on_interrupt);
  auto old_term = std::signal(SIGTERM, on_interrupt);
  auto old_xfsz = std::signal(SIGXFSZ, SIG_IGN);
  auto r = quantize_model(*in, *plan, o, out_path);
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  std::signal(SIGXFSZ, old_xfsz);
  if (!r) {
    if (g_interrupted.load()) {
      fail("interrupted: " + out_path + " was not written");
      return 130;  // as a shell reports a SIGINT
    }
    return fail(r.error().message() + " (" + out_path + " was not written)");
  }
  if (!f.quiet) std::printf("%s", format_quantize_results(*plan, *r).c_str());
  const double bpw =
      plan->n_elements > 0 ? 8.0 * static_cast<double>(plan->out_bytes) / static_cast<double>(plan->n_elements) : 0;
  std::printf("wrote %s: %s %s, %s -> %s (%.2f bits/weight), %zu tensors (%d fallback), %.2f s\n", out_path.c_str(),
              plan->is_recipe ? "recipe" : "type", plan->target.c_str(),
              human_bytes(static_cast<double>(plan->src_bytes)).c_str(),
              human_bytes(static_cast<double>(plan->out_bytes)).c_str(), bpw, plan->tensors.size(), plan->n_fallback(),
              r->seconds);
  if (!only.empty() && !f.quiet)
    std::fprintf(stderr,
                 "note: %s holds pocketlm-only tensor types (%s, listed in its %s metadata): llama.cpp-based "
                 "tools cannot read it\n",
                 out_path.c_str(), only.c_str(), kPocketlmOnlyTypesKey);
  if (plan->outliers > 0 && !f.quiet)
    std::fprintf(stderr,
                 "note: %s has an outlier branch (%lld f16 columns for %d matrices, metadata %s): llama.cpp-based "
                 "tools cannot read it\n",
                 out_path.c_str(), static_cast<long long>(plan->outliers), plan->n_outlier_matrices(),
                 kPocketlmOutliersKey);
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& root) {
  auto f = std::make_shared<QuantizeFlags>();
  CLI::App* app = root.add_subcommand(
      "quantize",
      "quantize a GGUF model: pocketlm quantize IN.gguf OUT.gguf TYPE|RECIPE (recipes Q4_K_M Q4_K_S Q5_K_M Q5_K_S "
      "Q3_K_M Q3_K_S Q2_K Q6_K Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 F16; types f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K "
      "q4_K q5_K q6_K iq4_nl iq4_xs; pocketlm-only types, which llama.cpp cannot read: q4_0_g64 q4_0_g128)");
  app->add_option("args", f->args, "IN.gguf OUT.gguf TYPE|RECIPE (OUT.gguf may be left out with --dry-run)")
      ->required()
      ->expected(2, 3);
  app->add_option("--imatrix", f->imatrix, "importance matrix (llama-imatrix GGUF or legacy .dat)")
      ->check(CLI::ExistingFile);
  app->add_option("--rules", f->rules,
                  "JSON list of {\"pattern\": regex, \"type\": name}, applied in order after the recipe "
                  "(first match wins)")
      ->check(CLI::ExistingFile);
  app->add_flag("--dry-run", f->dry_run,
                "print the per-tensor plan (types, bytes, bits/weight, fallbacks); write nothing");
  app->add_flag("--hot-fp16", f->hot_fp16, "token embedding and output head in f16");
  app->add_option("--token-embedding-type", f->token_embedding_type, "type of token_embd.weight");
  app->add_option("--output-tensor-type", f->output_tensor_type,
                  "type of output.weight (of the embedding when it is tied to the head)");
  app->add_flag("--pure", f->pure, "a recipe name means its base type for every weight (no per-tensor mix)");
  app->add_option(
      "--search", f->search,
      "scale search: fast (a candidate grid, the default), exact (the full sweep, several times slower) or nearest "
      "(no search: llama-quantize's plain rounding of the 32-value types, its bytes and speed; RTN only)");
  app->add_option("-t,--threads", f->threads, "threads (default: physical cores)")->check(CLI::Range(1, 1024));
  app->add_flag("-q,--quiet", f->quiet, "no progress line, notes or per-tensor table");
  app->add_option("--method", f->method,
                  "rtn | imatrix | awq | gptq | awq+gptq (default: imatrix with --calib/--tasks, else rtn; "
                  "docs/quantization.md)");
  auto* calib = app->add_option("--calib", f->calib, "calibration text (plain text, chunked as llama-imatrix does)")
                    ->check(CLI::ExistingFile);
  auto* tasks =
      app->add_option("--tasks", f->tasks, "calibration from task files (JSONL), rendered through the chat template")
          ->check(CLI::ExistingFile);
  calib->excludes(tasks);
  app->add_option("--calib-tokens", f->calib_tokens, "calibration tokens (whole chunks of --calib-ctx)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
  app->add_option("--calib-ctx", f->calib_ctx, "tokens per calibration chunk")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  app->add_option("--calib-cache", f->calib_cache,
                  "calibration statistics cache file (default: ~/.cache/pocketlm/calib/MODEL-DATA.calib)");
  app->add_option("--outliers", f->outliers,
                  "keep the K input channels with the largest mean x^2 of every attn/ffn matrix in f16 beside it "
                  "(a pocketlm-only outlier branch llama.cpp cannot read; needs --calib or --tasks)");
  app->add_option("--smooth", f->smooth, "SmoothQuant migration strength alpha in [0, 1], folded into the norms")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--gptq-damp", f->gptq_damp, "GPTQ damping, relative to the mean Hessian diagonal")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 10.0));
  app->add_option("--awq-grid", f->awq_grid, "AWQ: alpha values tried on [0, 1]")
      ->capture_default_str()
      ->check(CLI::Range(2, 101));
  app->footer(
      "examples:\n"
      "  pocketlm quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M --imatrix imatrix.gguf\n"
      "  pocketlm quantize model-f16.gguf Q4_K_M --dry-run          # the per-tensor plan, nothing written\n"
      "  pocketlm quantize model-f16.gguf model-q4_K.gguf q4_K --hot-fp16 --rules rules.json\n"
      "  pocketlm quantize model-f32.gguf model-Q4_0.gguf Q4_0 --method awq+gptq --calib wiki.train.raw\n"
      "rules.json: [{\"pattern\": \"attn_v\\\\.weight$\", \"type\": \"q6_K\"}, ...] (first match wins)");
  app->callback([f, app] {
    f->outliers_given = app->count("--outliers") > 0;
    const int rc = quantize(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
