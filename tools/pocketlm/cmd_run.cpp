// pocketlm run: generate a continuation of a prompt, streaming tokens to stdout; timings and memory to stderr.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "common.h"
#include "model/kv_memory.h"
#include "runtime/generator.h"
#include "util/stats.h"

namespace pocketlm::cli {
namespace {

struct RunFlags {
  ModelFlags model;
  DraftFlags draft;
  SamplerParams sampling;
  std::string prompt, file;
  int n_predict = -1;
  bool no_bos = false, ignore_eos = false, no_display_prompt = false, verbose_prompt = false;
};

int run(const RunFlags& f) {
  std::string prompt = f.prompt;
  if (!f.file.empty() && !read_text_file(f.file, prompt)) return 1;
  const double t_load = now_seconds();
  auto model = load_model(f.model.model);
  if (!model) return 1;
  std::unique_ptr<DraftSource> draft;
  std::unique_ptr<Session> session;
  if (!make_draft_and_session(*model, f.model, f.draft, draft, session)) return 1;
  const Tokenizer& tok = model->tokenizer();
  std::vector<int32_t> ids = tok.encode(prompt, !f.no_bos, true);
  if (ids.empty()) {
    std::fprintf(stderr, "error: the prompt is empty (and the model adds no BOS); give -p TEXT or -f FILE\n");
    return 1;
  }
  if (static_cast<int64_t>(ids.size()) >= session->n_ctx()) {
    std::fprintf(stderr, "error: the prompt is %zu tokens, which does not fit the context of %lld tokens (raise -c)\n",
                 ids.size(), static_cast<long long>(session->n_ctx()));
    return 1;
  }
  if (f.verbose_prompt) {
    std::fprintf(stderr, "prompt: %zu tokens:", ids.size());
    for (int32_t id : ids) std::fprintf(stderr, " %d", id);
    std::fprintf(stderr, "\n");
  }
  const double load_s = now_seconds() - t_load;
  const size_t rss_loaded = current_rss_bytes();
  if (!f.no_display_prompt) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }

  Sampler sampler(f.sampling);
  for (int32_t id : ids) sampler.accept(id);
  GenerateOptions opts;
  opts.max_tokens = f.n_predict;
  opts.ignore_eos = f.ignore_eos;
  opts.draft = f.draft.params;
  auto r = Generator(*session, tok, draft.get()).generate(ids, sampler, opts, [](int32_t, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  if (!r) {
    print_error(r.error());
    return 1;
  }
  const GenerateStats& st = r->stats;
  if (st.stop == StopReason::ContextFull)
    std::fprintf(stderr, "\n[context of %lld tokens is full; stopping]\n", static_cast<long long>(session->n_ctx()));
  std::printf("\n");
  std::fflush(stdout);  // the stats line starts on a line of its own, also when stdout is a pipe
  std::fprintf(stderr,
               "\nload: %.2f s | prompt: %lld tokens, %.1f t/s | generation: %lld tokens, %.2f t/s | "
               "KV cache: %s | weights: %s (%s) | RSS after load: %s | peak RSS: %s | seed: %u\n",
               load_s, static_cast<long long>(st.prompt_tokens), st.prompt_tokens_per_second(),
               static_cast<long long>(st.tokens), st.tokens_per_second(),
               human_bytes(static_cast<double>(st.kv_bytes)).c_str(),
               human_bytes(static_cast<double>(model->weights().total_bytes())).c_str(),
               model->repacked().summary().c_str(), human_bytes(static_cast<double>(rss_loaded)).c_str(),
               human_bytes(static_cast<double>(st.peak_rss_bytes)).c_str(), sampler.seed());
  if (draft) {
    std::fprintf(stderr, "%s\n", draft_summary(st.speculative).c_str());
    if (const std::string mem = draft->memory_summary(); !mem.empty()) std::fprintf(stderr, "%s\n", mem.c_str());
  }
  const KvCache& kv = session->kv_cache();
  std::fprintf(stderr, "%s",
               format_kv_memory(kv_memory_report(kv.layout(), session->n_ctx(), kMaxBatch), kv.bytes_held(),
                                kv.peak_bytes_held())
                   .c_str());
  return 0;
}

}  // namespace

void add_run_command(CLI::App& root) {
  auto f = std::make_shared<RunFlags>();
  CLI::App* app = root.add_subcommand("run", "generate text from a prompt (streams to stdout)");
  add_model_flags(*app, f->model);
  auto* p = app->add_option("-p,--prompt", f->prompt, "prompt text");
  auto* file = app->add_option("-f,--file", f->file, "read the prompt from a file")->check(CLI::ExistingFile);
  p->excludes(file);
  app->add_option("-n,--n-predict", f->n_predict, "tokens to generate (-1 = until end of generation or full context)")
      ->capture_default_str();
  app->add_flag("--no-bos", f->no_bos, "do not add the BOS token");
  app->add_flag("--ignore-eos", f->ignore_eos, "keep generating past end-of-generation tokens");
  app->add_flag("--no-display-prompt", f->no_display_prompt, "do not echo the prompt to stdout");
  app->add_flag("--verbose-prompt", f->verbose_prompt, "print the prompt's token ids to stderr");
  add_sampler_flags(*app, f->sampling);
  add_draft_flags(*app, f->draft);
  app->callback([f] {
    const int rc = run(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
