#pragma once
// `pocketlm serve`: an OpenAI-compatible HTTP server over the continuous-batching scheduler
// (runtime/batch_scheduler.h), on cpp-httplib. Endpoints (docs/server.md):
//   POST /v1/chat/completions   the model's chat template; stream: true as server-sent events ending "data: [DONE]"
//   POST /v1/completions        text (or token ids) to continue, one prompt or a batch; logprobs and echo, for scoring
//   POST /tokenize, /detokenize, GET /tokenizer_info   vLLM's tokenizer endpoints (lm-eval's remote tokenizer)
//   GET  /v1/models             the one model served
//   GET  /health                200 when ready, 503 while the model loads
//   GET  /metrics               Prometheus text: requests, tokens, tokens/s, KV bytes, queue
//   GET  /                      a self-contained chat page (server/chat_page.h)
// Errors are OpenAI's JSON error objects: 400 bad JSON / field / prompt longer than the context, 401 without
// the --api-key, 404, 413 body over the limit, 503 no KV memory or a full queue (and while loading).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/batch_scheduler.h"
#include "server/openai_request.h"
#include "util/error.h"

namespace pocketlm::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (tests)
  std::string api_key;               // non-empty: /v1/* need "Authorization: Bearer KEY"
  int timeout_seconds = 600;         // a client silent (or not reading) this long is dropped
  size_t max_body_bytes = 8u << 20;  // larger bodies get 413
  int http_threads = 0;              // 0: 32 (a streaming client holds one for its whole reply)
  std::string model_name;            // the id /v1/models reports (default: the file's name)
  std::string chat_template;         // overrides the model's; "" with none in the file: chatml
  RequestLimits limits;
};

class Server {
 public:
  explicit Server(ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and serves on a background thread; returns the bound port. Until set_ready(), /health is 503 and
  // the API answers 503 too.
  Expected<int> start();
  // The model (which must outlive the server) and its scheduler: from now the API answers.
  void set_ready(const Model& model, std::unique_ptr<BatchScheduler> scheduler);
  void stop();  // stops listening and returns when the serving thread has ended
  void wait();  // blocks until stop() (from another thread or a signal handler's thread)
  bool ready() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pocketlm::server
