// pocketlm chat: a conversation through the model's chat template. Interactive on a terminal; with -p, one
// turn. The KV cache is reused across turns: only the tokens after the longest common prefix are evaluated.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "common.h"
#include "gguf/reader.h"
#include "runtime/generator.h"
#include "tokenizer/chat_template.h"
#include "util/stats.h"

namespace pocketlm::cli {
namespace {

struct ChatFlags {
  ModelFlags model;
  DraftFlags draft;
  SamplerParams sampling;
  std::string prompt, system, chat_template;
  int n_predict = -1;
};

int chat(const ChatFlags& f) {
  auto model = load_model(f.model.model);
  if (!model) return 1;
  std::unique_ptr<DraftSource> draft;
  std::unique_ptr<Session> session;
  if (!make_draft_and_session(*model, f.model, f.draft, draft, session)) return 1;
  std::string tmpl = f.chat_template;
  if (tmpl.empty()) {
    auto t = model->gguf().get_string("tokenizer.chat_template");
    if (!t) {
      std::fprintf(stderr, "error: %s has no tokenizer.chat_template; pick one with --chat-template NAME\n",
                   f.model.model.c_str());
      return 1;
    }
    tmpl = *t;
  }
  const Tokenizer& tok = model->tokenizer();
  Sampler sampler(f.sampling);
  std::vector<ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system});
  std::vector<int32_t> fed;  // tokens currently in the KV cache
  const bool interactive = f.prompt.empty();

  for (;;) {
    std::string user = f.prompt;
    if (interactive) {
      std::fprintf(stderr, "\n> ");
      if (!std::getline(std::cin, user)) break;
      if (user.empty()) continue;
    }
    messages.push_back({"user", user});
    auto rendered = apply_chat_template(tmpl, messages, true);
    if (!rendered) {
      print_error(rendered.error());
      return 1;
    }
    std::vector<int32_t> ids = tok.encode(*rendered, true, true);
    size_t common = 0;
    while (common < fed.size() && common < ids.size() && fed[common] == ids[common]) ++common;
    if (common == ids.size()) --common;  // always evaluate at least one token to get logits
    if (static_cast<int64_t>(ids.size()) >= session->n_ctx()) {
      std::fprintf(stderr, "error: the conversation is %zu tokens, more than the context of %lld (raise -c)\n",
                   ids.size(), static_cast<long long>(session->n_ctx()));
      return 1;
    }
    // A sliding-window model may no longer hold what a deep roll-back needs: then start the cache over.
    if (!session->truncate(static_cast<int64_t>(common)).ok()) {
      session->reset();
      common = 0;
    }
    GenerateOptions opts;
    opts.max_tokens = f.n_predict;
    opts.draft = f.draft.params;
    auto r =
        Generator(*session, tok, draft.get())
            .generate(std::span<const int32_t>(ids).subspan(common), sampler, opts, [](int32_t, std::string_view text) {
              std::fwrite(text.data(), 1, text.size(), stdout);
              std::fflush(stdout);
              return true;
            });
    if (!r) {
      print_error(r.error());
      return 1;
    }
    // The cache now holds the conversation and the reply's tokens but the last (never evaluated).
    fed.assign(ids.begin(), ids.end());
    fed.insert(fed.end(), r->tokens.begin(), r->tokens.end());
    fed.resize(static_cast<size_t>(session->n_past()));
    const GenerateStats& st = r->stats;
    if (st.stop == StopReason::ContextFull) std::fprintf(stderr, "\n[context full]\n");
    std::printf("\n");
    std::fflush(stdout);  // the stats line starts on a line of its own, also when stdout is a pipe
    const double dt = st.prompt_seconds + st.decode_seconds;
    std::fprintf(stderr, "[%lld tokens, %.1f t/s overall, peak RSS %s]\n", static_cast<long long>(st.tokens),
                 static_cast<double>(st.tokens) / std::max(dt, 1e-9),
                 human_bytes(static_cast<double>(st.peak_rss_bytes)).c_str());
    if (draft) std::fprintf(stderr, "[%s]\n", draft_summary(st.speculative).c_str());
    const std::string& reply = r->text;
    messages.push_back({"assistant", reply});
    if (!interactive) break;
  }
  return 0;
}

}  // namespace

void add_chat_command(CLI::App& root) {
  auto f = std::make_shared<ChatFlags>();
  CLI::App* app = root.add_subcommand("chat", "chat with the model through its chat template");
  add_model_flags(*app, f->model);
  app->add_option("-p,--prompt", f->prompt, "one user turn, then exit (default: interactive)");
  app->add_option("--system", f->system, "system message");
  app->add_option(
      "--chat-template", f->chat_template,
      "template name or Jinja source overriding the model's (chatml, llama2, llama3, gemma, phi3, mistral)");
  app->add_option("-n,--n-predict", f->n_predict, "max tokens per reply (-1 = until end of turn)")
      ->capture_default_str();
  f->sampling.temp = 0.8f;
  add_sampler_flags(*app, f->sampling);
  add_draft_flags(*app, f->draft);
  app->callback([f] {
    const int rc = chat(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
