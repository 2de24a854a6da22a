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
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "common.h"
#include "eval/log_probs.h"
#include "eval/logits_file.h"
#include "eval/perplexity.h"
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

nlohmann::json mean_err(const eval::MeanErr& m) { return {{"value", m.value}, {"error", m.err}}; }

void print_kld_report(const eval::KldReport& r) {
  std::printf("====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r.ppl.value, r.ppl.err);
  std::printf("Mean PPL(base)                : %10.6f ± %10.6f\n", r.ppl_base.value, r.ppl_base.err);
  std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r.ln_ppl_correlation);
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r.ln_ppl_ratio.value, r.ln_ppl_ratio.err);
  std::printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", r.ppl_ratio.value, r.ppl_ratio.err);
  std::printf("Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n\n", r.ppl_diff.value, r.ppl_diff.err);
  std::printf("====== KL divergence statistics ======\n");
  std::printf("Mean    KLD: %10.6f ± %10.6f\n", r.kld.value, r.kld.err);
  std::printf("Maximum KLD: %10.6f\n", r.kld_max);
  std::printf("99.9%%   KLD: %10.6f\n", r.kld_p999);
  std::printf("99.0%%   KLD: %10.6f\n", r.kld_p99);
  std::printf("95.0%%   KLD: %10.6f\n", r.kld_p95);
  std::printf("90.0%%   KLD: %10.6f\n", r.kld_p90);
  std::printf("Median  KLD: %10.6f\n", r.kld_median);
  std::printf("10.0%%   KLD: %10.6f\n", r.kld_p10);
  std::printf(" 5.0%%   KLD: %10.6f\n", r.kld_p5);
  std::printf(" 1.0%%   KLD: %10.6f\n", r.kld_p1);
  std::printf(" 0.1%%   KLD: %10.6f\n", r.kld_p01);
  std::printf("Minimum KLD: %10.6f\n\n", r.kld_min);
  std::printf("====== Token probability statistics ======\n");
  std::printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * r.mean_dp.value, 100.0 * r.mean_dp.err);
  std::printf("Maximum Δp: %6.3f%%\n", 100.0 * r.dp_max);
  std::printf("99.9%%   Δp: %6.3f%%\n", 100.0 * r.dp_p999);
  std::printf("99.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p99);
  std::printf("95.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p95);
  std::printf("90.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p90);
  std::printf("75.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p75);
  std::printf("Median  Δp: %6.3f%%\n", 100.0 * r.dp_median);
  std::printf("25.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p25);
  std::printf("10.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p10);
  std::printf(" 5.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p5);
  std::printf(" 1.0%%   Δp: %6.3f%%\n", 100.0 * r.dp_p1);
  std::printf(" 0.1%%   Δp: %6.3f%%\n", 100.0 * r.dp_p01);
  std::printf("Minimum Δp: %6.3f%%\n", 100.0 * r.dp_min);
  std::printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * r.rms_dp.value, 100.0 * r.rms_dp.err);
  std::printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * r.same_top.value, 100.0 * r.same_top.err);
}

nlohmann::json kld_json(const eval::KldReport& r) {
  return {{"positions", r.positions},
          {"ppl", mean_err(r.ppl)},
          {"ppl_base", mean_err(r.ppl_base)},
          {"ln_ppl_correlation", r.ln_ppl_correlation},
          {"ln_ppl_ratio", mean_err(r.ln_ppl_ratio)},
          {"ppl_ratio", mean_err(r.ppl_ratio)},
          {"ppl_diff", mean_err(r.ppl_diff)},
          {"kld",
           {{"mean", r.kld.value}, {"mean_error", r.kld.err}, {"max", r.kld_max}, {"p99.9", r.kld_p999},
            {"p99", r.kld_p99}, {"p95", r.kld_p95}, {"p90", r.kld_p90}, {"median", r.kld_median}, {"p10", r.kld_p10},
            {"p5", r.kld_p5}, {"p1", r.kld_p1}, {"p0.1", r.kld_p01}, {"min", r.kld_min}}},
          {"delta_p",
           {{"mean", r.mean_dp.value}, {"mean_error", r.mean_dp.err}, {"rms", r.rms_dp.value},
            {"rms_error", r.rms_dp.err}, {"max", r.dp_max}, {"p99.9", r.dp_p999}, {"p99", r.dp_p99},
            {"p95", r.dp_p95}, {"p90", r.dp_p90}, {"p75", r.dp_p75}, {"median", r.dp_median}, {"p25", r.dp_p25},
            {"p10", r.dp_p10}, {"p5", r.dp_p5}, {"p1", r.dp_p1}, {"p0.1", r.dp_p01}, {"min", r.dp_min}}},
          {"same_top", {{"value", r.same_top.value}, {"error", r.same_top.err}, {"count", r.same_top_count}}}};
}

// With --kl-divergence: the base file's tokens must be this text's (when -f is given) and its tokenizer
// this model's.
bool check_base_matches(const eval::LogitsReader& base, const Tokenizer& tok, const std::string& text_path,
                        const std::vector<int32_t>* text_ids) {
  const eval::LogitsFileInfo& in = base.info();
  const std::string& name = base.path();
  if (in.n_vocab != tok.n_vocab()) {
    std::fprintf(stderr, "error: %s: made with a vocabulary of %lld tokens, but this model's has %d: a different tokenizer\n",
                 name.c_str(), static_cast<long long>(in.n_vocab), tok.n_vocab());
    return false;
  }
  if (in.format == eval::LogitsFileInfo::Format::Pocketlm && in.tokenizer_fingerprint != eval::tokenizer_fingerprint(tok)) {
    std::fprintf(stderr,
                 "error: %s: made with a different tokenizer (fingerprint %016llx, this model's is %016llx); KL divergence "
                 "needs the same vocabulary\n",
                 name.c_str(), static_cast<unsigned long long>(in.tokenizer_fingerprint),
                 static_cast<unsigned long long>(eval::tokenizer_fingerprint(tok)));
    return false;
  }
  const int32_t bos = tok.add_bos() ? tok.bos() : -1;
  if (in.format == eval::LogitsFileInfo::Format::Pocketlm && (in.bos_replaced != (bos >= 0) || (bos >= 0 && in.bos != bos))) {
    std::fprintf(stderr, "error: %s: saved with BOS %s, but this model %s\n", name.c_str(),
                 in.bos_replaced ? std::to_string(in.bos).c_str() : "off", bos >= 0 ? ("adds BOS " + std::to_string(bos)).c_str() : "adds none");
    return false;
  }
  if (text_ids != nullptr) {
    const auto file_ids = base.tokens();
    if (text_ids->size() < file_ids.size()) {
      std::fprintf(stderr, "error: %s holds %zu tokens, but %s tokenizes to only %zu: the logits were saved over another text\n",
                   name.c_str(), file_ids.size(), text_path.c_str(), text_ids->size());
      return false;
    }
    for (size_t i = 0; i < file_ids.size(); ++i) {
      if (file_ids[i] != (*text_ids)[i]) {
        std::fprintf(stderr,
                     "error: %s: token %zu is id %d, but %s has id %d there: the logits were saved over another text "
                     "(or with another tokenizer)\n",
                     name.c_str(), i, file_ids[i], text_path.c_str(), (*text_ids)[i]);
        return false;
      }
    }
  }
  return true;
}

int run(const PerplexityFlags& f) {
  const bool json = f.output == "json";
  const bool kld_mode = !f.kl_base.empty();
  const double t_start = now_seconds();
  auto model = load_model(f.model.model);
  if (!model) return 1;
  const Tokenizer& tok = model->tokenizer();

  std::optional<eval::LogitsReader> base;
  if (kld_mode) {
    auto r = eval::LogitsReader::open(f.kl_base);
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.error().message().c_str());
      return 1;
    }
    base.emplace(std::move(r).value());
    if (f.ctx_given && f.model.n_ctx != base->info().n_ctx) {
      std::fprintf(stderr, "error: %s was saved with -c %lld, but -c %lld was given (leave -c out to use the file's)\n",
                   f.kl_base.c_str(), static_cast<long long>(base->info().n_ctx), static_cast<long long>(f.model.n_ctx));
      return 1;
    }
    if (f.chunks > base->info().n_chunk) {
      std::fprintf(stderr, "error: --chunks %lld, but %s holds only %lld chunks\n", static_cast<long long>(f.chunks),
                   f.kl_base.c_str(), static_cast<long long>(base->info().n_chunk));
      return 1;
    }
  } else if (f.file.empty()) {
    std::fprintf(stderr, "error: give the text with -f FILE (e.g. wiki.test.raw)\n");
    return 1;
  }
  if (!f.save_logits.empty()) {
    std::error_code ec;
    for (const std::string& in : {f.model.model, f.file}) {
      if (!in.empty() && std::filesystem::equivalent(f.save_logits, in, ec)) {
        std::fprintf(stderr, "error: --save-logits %s would overwrite the input %s\n", f.save_logits.c_str(), in.c_str());
        return 1;
      }
    }
  }

  std::vector<int32_t> ids;
  if (!f.file.empty()) {
    std::string text;
    if (!read_text_file(f.file, text)) return 1;
    const double t0 = now_seconds();
    auto r = eval::tokenize_for_perplexity(tok, text);
    if (!r) {
      std::fprintf(stderr, "error: %s: %s\n", f.model.model.c_str(), r.error().message().c_str());
      return 1;
    }
    ids = std::move(r).value();
    std::fprintf(stderr, "perplexity: %s: %zu bytes, %zu tokens (tokenized in %.2f s)\n", f.file.c_str(), text.size(),
                 ids.size(), now_seconds() - t0);
  }
  if (kld_mode && !check_base_matches(*base, tok, f.file, f.file.empty() ? nullptr : &ids)) return 1;

  const int64_t n_ctx = kld_mode ? base->info().n_ctx : f.model.n_ctx;
  const int64_t n_tokens = kld_mode ? static_cast<int64_t>(base->tokens().size()) : static_cast<int64_t>(ids.size());
  auto plan_r = eval::plan_chunks(tok, n_tokens, n_ctx, f.chunks, kld_mode ? f.kl_base : f.file);
  if (!plan_r) {
    std::fprintf(stderr, "error: %s\n", plan_r.error().message().c_str());
    return 1;
  }
  const eval::ChunkPlan plan = *plan_r;
  if (n_ctx > model->config().n_ctx_train)
    std::fprintf(stderr, "warning: the model was trained on a context of %lld tokens; -c is %lld\n",
                 static_cast<long long>(model->config().n_ctx_train), static_cast<long long>(n_ctx));

  std::optional<eval::LogitsWriter> writer;
  if (!f.save_logits.empty()) {
    eval::LogitsFileInfo info;
    info.n_ctx = n_ctx;
    info.n_vocab = tok.n_vocab();
    info.n_chunk = plan.n_chunk;
    info.bos_replaced = plan.bos >= 0;
    info.bos = plan.bos;
    info.tokenizer_fingerprint = eval::tokenizer_fingerprint(tok);
    // The file is created with the signals blocked and the handler installed before they are unblocked,
    // so a Ctrl-C at any moment removes it. No other thread exists yet (the session's pool comes later).
    sigset_t stop, old;
    sigemptyset(&stop);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    auto w = eval::LogitsWriter::create(f.save_logits, info,
                                        std::span<const int32_t>(ids).first(static_cast<size_t>(plan.n_chunk * n_ctx)));
    if (w) {
      writer.emplace(std::move(w).value());
      remove_on_signal(writer->temp_path());
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (!w) {
      std::fprintf(stderr, "error: %s\n", w.error().message().c_str());
      return 1;
    }
    std::fprintf(stderr, "perplexity: saving log-probs to %s (%s: %zu bytes per scored position)\n", f.save_logits.c_str(),
                 human_bytes(static_cast<double>(eval::logits_file_bytes(n_ctx, tok.n_vocab(), plan.n_chunk))).c_str(),
                 eval::log_prob_row_bytes(tok.n_vocab()));
  }

  ModelFlags mf = f.model;
  mf.n_ctx = n_ctx;
  auto session = make_session(*model, mf);
  if (!session) return 1;
  const int64_t n_batch = std::min(f.batch, n_ctx);
  const int threads = f.model.threads > 0 ? f.model.threads : physical_cores();
  std::fprintf(stderr, "perplexity: %lld chunks of %lld tokens, scoring the last %lld of each; batch %lld, %d threads, KV %s\n",
               static_cast<long long>(plan.n_chunk), static_cast<long long>(n_ctx), static_cast<long long>(plan.scored()),
               static_cast<long long>(n_batch), threads, f.model.cache_type_k.c_str());

  ChunkLog log(json);
  Progress progress(kld_mode ? "kl-divergence" : "perplexity", plan.n_chunk * n_ctx, "tokens");
  const auto tokens_done = [&](int64_t n) { progress.add(n); };
  const double t_eval = now_seconds();
  nlohmann::json out = {{"model", f.model.model}, {"n_ctx", n_ctx},     {"chunks", plan.n_chunk},
                        {"n_batch", n_batch},     {"threads", threads}, {"kv_type", f.model.cache_type_k}};
  if (!f.file.empty()) out["text"] = f.file;
  if (kld_mode) out["base_logits"] = f.kl_base;

  if (!kld_mode) {
    auto r = eval::perplexity(*session, ids, plan, n_batch, writer ? &*writer : nullptr, tokens_done,
                              [&](const eval::PerplexityResult& so_far) {
                                const double ppl = so_far.running_ppl.back();
                                progress.set_note("PPL " + fmt("%.4f", ppl));
                                log.add("[" + std::to_string(so_far.running_ppl.size()) + "]" + fmt("%.4f", ppl) + ",");
                              });
    progress.finish();
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.error().message().c_str());
      return 1;
    }
    if (writer) {
      if (auto st = writer->commit(); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().message().c_str());
        return 1;
      }
      g_partial_file[0] = 0;  // renamed into place: nothing to remove any more
      out["saved_logits"] = {{"path", f.save_logits},
                             {"bytes", writer->bytes_written()},
                             {"bytes_per_position", eval::log_prob_row_bytes(tok.n_vocab())}};
    }
    const double seconds = now_seconds() - t_eval;
    log.add("\n");
    log.flush();
    out["scored_tokens"] = r->count;
    out["ppl"] = r->ppl();
    out["ppl_error"] = r->ppl_error();
    out["running_ppl"] = r->running_ppl;
    out["seconds"] = seconds;
    out["tokens_per_second"] = static_cast<double>(plan.n_chunk * n_ctx) / seconds;
    if (json) {
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      if (r->ppl_error() > 0)
        std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r->ppl(), r->ppl_error());
      else
        std::printf("Final estimate: PPL = %.4f (too few tokens for an error estimate)\n", r->ppl());
    }
    std::fprintf(stderr, "perplexity: %lld tokens in %.2f s (%.1f tokens/s); total %.2f s%s%s\n",
                 static_cast<long long>(plan.n_chunk * n_ctx), seconds, static_cast<double>(plan.n_chunk * n_ctx) / seconds,
                 now_seconds() - t_start, writer ? "; log-probs saved to " : "", writer ? f.save_logits.c_str() : "");
    return 0;
  }

  log.add("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p\n");
  auto r = eval::kl_divergence(*session, *base, plan, n_batch, tokens_done, [&](const eval::KldRun& so_far) {
    const eval::KldRunning& k = so_far.per_chunk.back();
    char line[256];
    std::snprintf(line, sizeof line, "%4zu    %9.4f ± %9.4f    %10.5f ± %10.5f    %10.5f ± %10.5f    %6.3f ± %6.3f %%    %6.3f ± %6.3f %%\n",
                  so_far.per_chunk.size(), k.ppl.value, k.ppl.err, k.ln_ppl_ratio.value, k.ln_ppl_ratio.err, k.kld.value,
                  k.kld.err, 100.0 * k.rms_dp.value, 100.0 * k.rms_dp.err, 100.0 * k.same_top.value, 100.0 * k.same_top.err);
    log.add(line);
    progress.set_note("KLD " + fmt("%.5f", k.kld.value) + ", same top " + fmt("%.2f", 100.0 * k.same_top.value) + " %");
  });
  progress.finish();
  if (!r) {
    std::fprintf(stderr, "error: %s\n", r.error().message().c_str());
    return 1;
  }
  const double seconds = now_seconds() - t_eval;
  log.add("\n");
  log.flush();
  const eval::KldReport rep = r->acc.report();
  out["scored_tokens"] = rep.positions;
  out["seconds"] = seconds;
  out["tokens_per_second"] = static_cast<double>(plan.n_chunk * n_ctx) / seconds;
  out["kl_divergence"] = kld_json(rep);
  if (json) std::printf("%s\n", out.dump(2).c_str());
  else print_kld_report(rep);
  std::fprintf(stderr, "kl-divergence: %lld tokens in %.2f s (%.1f tokens/s); total %.2f s\n",
               static_cast<long long>(plan.n_chunk * n_ctx), seconds, static_cast<double>(plan.n_chunk * n_ctx) / seconds,
               now_seconds() - t_start);
  return 0;
}

}  // namespace

void add_perplexity_command(CLI::App& root) {
  auto f = std::make_shared<PerplexityFlags>();
  CLI::App* app = root.add_subcommand("perplexity", "perplexity of a model over a text, and KL divergence against a base model (as llama-perplexity)");
  f->model.n_ctx = 512;
  add_model_flags(*app, f->model);
  app->add_option("-f,--file", f->file, "the text (e.g. wikitext-2's wiki.test.raw)")->check(CLI::ExistingFile);
  app->add_option("--chunks", f->chunks, "evaluate at most N chunks (-1 = all)")->capture_default_str();
  app->add_option("-b,--batch-size", f->batch, "tokens per forward call")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  auto* save = app->add_option("--save-logits", f->save_logits, "write the per-position log-probs for a later --kl-divergence (base model)");
  auto* kl = app->add_option("--kl-divergence", f->kl_base, "score against a base model's --save-logits file (or llama.cpp's --kl-divergence-base file)")
                 ->check(CLI::ExistingFile);
  save->excludes(kl);
  app->add_option("-o,--output", f->output, "result format on stdout: text | json")->capture_default_str()->check(CLI::IsMember({"text", "json"}));
  app->callback([f, app] {
    f->ctx_given = app->get_option("--ctx-size")->count() > 0;
    const int rc = run(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
