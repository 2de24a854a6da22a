// pocketlm perplexity: PPL of a model over a text, chunked as llama-perplexity does; --save-logits writes
// the base model's distributions, --kl-divergence scores another model against them (docs/evaluation.md).
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "commands.h"
#include "common.h"
#include "eval/log_probs.h"
#include "eval/logits_file.h"
#include "eval/perplexity.h"
#include "eval/perplexity_run.h"
#include "util/progress.h"
#include "util/stats.h"
#include "util/thread_pool.h"

namespace pocketlm::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  std::string file, save_logits, kl_base, output = "text";
  int64_t chunks = -1;
  int64_t batch = 2048;
  bool ctx_given = false;
};

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

// Per-chunk lines go to stdout as they come, unless stdout is the terminal the progress line is drawn on:
// then they wait for the end so the two do not overwrite each other.
class ChunkLog {
 public:
  explicit ChunkLog(bool quiet) : quiet_(quiet), hold_(isatty(fileno(stdout)) != 0) {}
  void add(const std::string& s) {
    if (quiet_) return;
    if (hold_) {
      held_ += s;
    } else {
      std::fputs(s.c_str(), stdout);
      std::fflush(stdout);
    }
  }
  void flush() {
    if (!held_.empty()) std::fputs(held_.c_str(), stdout);
    held_.clear();
  }

 private:
  bool quiet_, hold_;
  std::string held_;
};

// Ctrl-C (or a kill) during --save-logits must not leave a multi-gigabyte temporary file behind: the
// handler removes it (unlink is async-signal-safe), then dies of the same signal.
char g_partial_file[4096];
extern "C" void remove_partial_file(int sig) {
  if (g_partial_file[0] != 0) ::unlink(g_partial_file);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
void remove_on_signal(const std::string& path) {
  if (path.size() >= sizeof g_partial_file) return;
  std::memcpy(g_partial_file, path.c_str(), path.size() + 1);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_partial_file);
}

int run(const PerplexityFlags& f) {
  const bool json = f.output == "json";
  const bool kld_mode = !f.kl_base.empty();
  if (!kld_mode && f.file.empty()) {
    std::fprintf(stderr, "error: give the text with -f FILE (e.g. wiki.test.raw)\n");
    return 1;
  }
  const double t_start = now_seconds();
  auto model = load_model(f.model.model);
  if (!model) return 1;
  auto so = session_options(f.model);
  if (!so) {
    print_error(so.error());
    return 1;
  }
  eval::PerplexityJob job;
  job.text_path = f.file;
  job.base_logits = f.kl_base;
  job.save_logits = f.save_logits;
  if (!kld_mode || f.ctx_given) job.n_ctx = f.model.n_ctx;
  job.max_chunks = f.chunks;
  job.n_batch = f.batch;
  job.session = *so;

  ChunkLog log(json);
  std::unique_ptr<Progress> progress;
  eval::PerplexityEvents ev;
  ev.note = [](const std::string& line) { std::fprintf(stderr, "perplexity: %s\n", line.c_str()); };
  ev.start = [&](int64_t total) {
    progress = std::make_unique<Progress>(kld_mode ? "kl-divergence" : "perplexity", total, "tokens");
    if (kld_mode)
      log.add(
          "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS         "
          "   Same top p\n");
  };
  ev.tokens_done = [&](int64_t n) { progress->add(n); };
  ev.ppl_chunk = [&](int64_t chunk, double ppl) {
    progress->set_note("PPL " + fmt("%.4f", ppl));
    log.add("[" + std::to_string(chunk) + "]" + fmt("%.4f", ppl) + ",");
  };
  ev.kld_chunk = [&](int64_t chunk, const eval::KldRunning& k) {
    char line[256];
    std::snprintf(
        line, sizeof line,
        "%4lld    %9.4f ± %9.4f    %10.5f ± %10.5f    %10.5f ± %10.5f    %6.3f ± %6.3f %%    %6.3f ± %6.3f %%\n",
        static_cast<long long>(chunk), k.ppl.value, k.ppl.err, k.ln_ppl_ratio.value, k.ln_ppl_ratio.err, k.kld.value,
        k.kld.err, 100.0 * k.rms_dp.value, 100.0 * k.rms_dp.err, 100.0 * k.same_top.value, 100.0 * k.same_top.err);
    log.add(line);
    progress->set_note("KLD " + fmt("%.5f", k.kld.value) + ", same top " + fmt("%.2f", 100.0 * k.same_top.value) +
                       " %");
  };
  // Ctrl-C while the log-probs are written removes the partial file (installed as soon as it exists).
  ev.partial_file = [](const std::string& temp) {
    if (temp.empty())
      g_partial_file[0] = 0;
    else
      remove_on_signal(temp);
  };

  auto r = eval::run_perplexity(*model, f.model.model, job, ev);
  if (progress) progress->finish();
  if (!r) {
    print_error(r.error());
    return 1;
  }
  if (!r->warning.empty()) std::fprintf(stderr, "warning: %s\n", r->warning.c_str());
  log.add("\n");
  log.flush();
  nlohmann::json out = r->to_json();
  out["kv_type"] = f.model.cache_type_k;
  if (r->saved_bytes) out["saved_logits"]["path"] = f.save_logits;
  const int64_t evaluated = r->n_chunk * r->n_ctx;
  if (r->ppl) {
    if (json) {
      std::printf("%s\n", out.dump(2).c_str());
    } else if (r->ppl->ppl_error() > 0) {
      std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r->ppl->ppl(), r->ppl->ppl_error());
    } else {
      std::printf("Final estimate: PPL = %.4f (too few tokens for an error estimate)\n", r->ppl->ppl());
    }
    std::fprintf(stderr, "perplexity: %lld tokens in %.2f s (%.1f tokens/s); total %.2f s%s%s\n",
                 static_cast<long long>(evaluated), r->eval_seconds, r->tokens_per_second(), now_seconds() - t_start,
                 r->saved_bytes ? "; log-probs saved to " : "", r->saved_bytes ? f.save_logits.c_str() : "");
    return 0;
  }
  if (json)
    std::printf("%s\n", out.dump(2).c_str());
  else
    std::fputs(eval::format_kld_report(*r->kld).c_str(), stdout);
  std::fprintf(stderr, "kl-divergence: %lld tokens in %.2f s (%.1f tokens/s); total %.2f s\n",
               static_cast<long long>(evaluated), r->eval_seconds, r->tokens_per_second(), now_seconds() - t_start);
  return 0;
}

}  // namespace

void add_perplexity_command(CLI::App& root) {
  auto f = std::make_shared<PerplexityFlags>();
  CLI::App* app = root.add_subcommand(
      "perplexity", "perplexity of a model over a text, and KL divergence against a base model (as llama-perplexity)");
  f->model.n_ctx = 512;
  add_model_flags(*app, f->model);
  app->add_option("-f,--file", f->file, "the text (e.g. wikitext-2's wiki.test.raw)")->check(CLI::ExistingFile);
  app->add_option("--chunks", f->chunks, "evaluate at most N chunks (-1 = all)")->capture_default_str();
  app->add_option("-b,--batch-size", f->batch, "tokens per forward call")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  auto* save = app->add_option("--save-logits", f->save_logits,
                               "write the per-position log-probs for a later --kl-divergence (base model)");
  auto* kl =
      app->add_option("--kl-divergence", f->kl_base,
                      "score against a base model's --save-logits file (or llama.cpp's --kl-divergence-base file)")
          ->check(CLI::ExistingFile);
  save->excludes(kl);
  app->add_option("-o,--output", f->output, "result format on stdout: text | json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app->callback([f, app] {
    f->ctx_given = app->get_option("--ctx-size")->count() > 0;
    const int rc = run(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
