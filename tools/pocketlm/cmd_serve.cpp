// pocketlm serve: an OpenAI-compatible HTTP server with continuous batching (src/server, docs/server.md).
// Flags only: the server is server::Server over runtime's BatchScheduler.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "commands.h"
#include "common.h"
#include "runtime/batch_scheduler.h"
#include "server/http_server.h"

namespace pocketlm::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

struct ServeFlags {
  ModelFlags model;
  server::ServerOptions server;
  int parallel = 4;
  int64_t prefill_chunk = 128;
  std::string max_body = "8M";
  DraftFlags draft;
};

int serve(ServeFlags& f) {
  const bool drafting = !f.draft.model.empty() || !f.draft.self_type.empty() || f.draft.lookup;
  if (drafting && f.parallel != 1) {
    std::fprintf(
        stderr,
        "error: speculative decoding (--draft, --draft-self, --lookup) needs --parallel 1: each sequence's draft is "
        "verified in a target pass of its own, which does not batch with other sequences (got --parallel %d)\n",
        f.parallel);
    return 1;
  }
  auto body = parse_byte_size(f.max_body, "--max-body");
  if (!body) {
    print_error(body.error());
    return 1;
  }
  f.server.max_body_bytes = *body;
  auto so = session_options(f.model);
  if (!so) {
    print_error(so.error());
    return 1;
  }
  if (f.server.model_name.empty()) f.server.model_name = std::filesystem::path(f.model.model).filename().string();
  server::Server srv(f.server);
  auto port = srv.start();  // listening at once: /health says 503 while the model loads
  if (!port) {
    print_error(port.error());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  std::fprintf(stderr, "pocketlm serve: listening on http://%s:%d (loading %s)\n", f.server.host.c_str(), *port,
               f.model.model.c_str());
  auto model = load_model(f.model.model);
  if (!model) return 1;
  SchedulerOptions opts;
  opts.parallel = f.parallel;
  opts.session = *so;
  opts.prefill_chunk = f.prefill_chunk;
  if (drafting) {
    std::unique_ptr<DraftSource> draft;
    if (!make_draft(*model, f.draft, opts.session, draft)) return 1;
    std::fprintf(stderr, "pocketlm serve: speculative decoding with %s (requests asking for logprobs decode plainly)\n",
                 draft->name().c_str());
    opts.draft = std::move(draft);
    opts.draft_params = f.draft.params;
  }
  auto sched = BatchScheduler::create(*model, opts);
  if (!sched) {
    print_error(sched.error());
    return 1;
  }
  const SchedulerMetrics m = (*sched)->metrics();
  const long long n_ctx = (*sched)->n_ctx();
  srv.set_ready(*model, std::move(*sched));  // before the "ready" line: scripts wait for it, then send requests
  std::fprintf(stderr, "pocketlm serve: ready: %d sequences of up to %lld tokens, KV budget %s, %d threads\n",
               f.parallel, n_ctx, human_bytes(static_cast<double>(m.kv_bytes_capacity)).c_str(), so->n_threads);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "pocketlm serve: stopping\n");
  srv.stop();
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& root) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* app =
      root.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching and a chat page");
  add_model_flags(*app, f->model);
  app->add_option("--host", f->server.host, "address to listen on")->capture_default_str();
  app->add_option("--port", f->server.port, "port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--parallel", f->parallel, "sequences decoded together in one batched step (-c is per sequence)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app->add_option("--prefill-chunk", f->prefill_chunk,
                  "prompt tokens a sequence feeds per step (long prompts do not stall others)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{512}));
  app->add_option("--api-key", f->server.api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  app->add_option("--timeout", f->server.timeout_seconds,
                  "seconds a client may stay silent (or not read) before it is dropped")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app->add_option("--max-body", f->max_body, "largest request body (K/M suffix); larger gets 413")
      ->capture_default_str();
  app->add_option("--alias", f->server.model_name, "the model id the API reports (default: the file name)");
  app->add_option("--chat-template", f->server.chat_template, "template name or Jinja source overriding the model's");
  app->add_option("--http-threads", f->server.http_threads,
                  "HTTP connection threads: one per open connection (default 32)")
      ->check(CLI::Range(1, 1024));
  add_draft_flags(*app, f->draft);  // with --parallel 1 only
  app->callback([f] {
    const int rc = serve(*f);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace pocketlm::cli
