// pocketlm chat: a conversation through the model's chat template. Interactive on a terminal; with -p, one
// turn. The KV cache is reused across turns: only the tokens after the longest common prefix are evaluated.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "common.h"
#include "gguf/reader.h"
#include "tokenizer/chat_template.h"
#include "util/stats.h"

namespace pocketlm::cli {
namespace {

struct ChatFlags {
  ModelFlags model;
  SamplerParams sampling;
  std::string prompt, system, chat_template;
  int n_predict = -1;
};

int chat(const ChatFlags& f) {
  auto model = load_model(f.model.model);
  if (!model) return 1;
  auto session = make_session(*model, f.model);
  if (!session) return 1;
  std::string tmpl = f.chat_template;
  if (tmpl.empty()) {
    auto t = model->gguf().get_string("tokenizer.chat_template");
    if (!t) {
      std::fprintf(stderr, "error: %s has no tokenizer.chat_template; pick one with --chat-template NAME\n", f.model.model.c_str());
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
      std::fprintf(stderr, "error: %s\n", rendered.error().message().c_str());
      return 1;
    }
    std::vector<int32_t> ids = tok.encode(*rendered, true, true);
    size_t common = 0;
    while (common < fed.size() && common < ids.size() && fed[common] == ids[common]) ++common;
    if (common == ids.size()) --common;  // always evaluate at least one token to get logits
    if (static_cast<int64_t>(ids.size()) >= session->n_ctx()) {
      std::fprintf(stderr, "error: the conversation is %zu tokens, more than the context of %lld (raise -c)\n", ids.size(),
                   static_cast<long long>(session->n_ctx()));
      return 1;
    }
    // A sliding-window model may no longer hold what a deep roll-back needs: then start the cache over.
    if (!session->truncate(static_cast<int64_t>(common)).ok()) {
      session->reset();
      common = 0;
    }
    fed.assign(ids.begin(), ids.end());
    const double t0 = now_seconds();
    auto logits = session->eval(std::span<const int32_t>(ids).subspan(common));
    if (!logits) {
      std::fprintf(stderr, "error: %s\n", logits.error().message().c_str());
      return 1;
    }
    std::span<const float> cur = *logits;
    std::string reply;
    int n_gen = 0;
    while (f.n_predict < 0 || n_gen < f.n_predict) {
      const int32_t next = sampler.sample(cur);
      if (tok.is_eog(next)) break;
      sampler.accept(next);
      const std::string piece = tok.token_to_piece(next);
      reply += piece;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      ++n_gen;
      if (session->n_past() + 1 >= session->n_ctx()) {
        std::fprintf(stderr, "\n[context full]\n");
        break;
      }
      auto l = session->eval(std::span<const int32_t>(&next, 1));
      if (!l) {
        std::fprintf(stderr, "error: %s\n", l.error().message().c_str());
        return 1;
      }
      fed.push_back(next);
      cur = *l;
    }
    std::printf("\n");
    const double dt = now_seconds() - t0;
    std::fprintf(stderr, "[%d tokens, %.1f t/s overall, peak RSS %s]\n", n_gen, n_gen / std::max(dt, 1e-9),
                 human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
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
  app->add_option("--chat-template", f->chat_template,
                  "template name or Jinja source overriding the model's (chatml, llama2, llama3, gemma, phi3, mistral)");
  app->add_option("-n,--n-predict", f->n_predict, "max tokens per reply (-1 = until end of turn)")->capture_default_str();
  f->sampling.temp = 0.8f;
  add_sampler_flags(*app, f->sampling);
  app->callback([f] {
    const int rc = chat(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
