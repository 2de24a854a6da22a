// pocketlm serve in-process: the server on an ephemeral port over stories260K, spoken to with cpp-httplib's
// client: the API's shapes, greedy output equal to the generate loop, SSE streaming, every error status
// (400/401/404/413/503), a slow client dropped after the timeout, a client that leaves the stream freeing its
// sequence, and the server answering after all of them.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "runtime/batch_scheduler.h"
#include "runtime/generator.h"
#include "runtime/speculative/draft_setup.h"
#include "server/http_server.h"
#include "test_paths.h"

namespace pocketlm::server {
namespace {

using json = nlohmann::json;

const Model* stories() {
  static auto m = Model::load(test::stories_path().string());
  return m.ok() ? m->get() : nullptr;
}

class HttpServer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (stories() == nullptr) GTEST_SKIP() << test::stories_path() << " missing";
  }
  void start(ServerOptions o = {}, int parallel = 2, int64_t n_ctx = 128, const DraftConfig& draft = {}) {
    o.port = 0;
    o.model_name = "stories";
    if (o.timeout_seconds == 600) o.timeout_seconds = 5;
    server_ = std::make_unique<Server>(o);
    auto p = server_->start();
    ASSERT_TRUE(p.ok()) << p.error().message();
    port_ = *p;
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(30, 0);
    auto health = client_->Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 503);  // no model yet
    auto early = client_->Post("/v1/completions", {{"Authorization", "Bearer " + o.api_key}}, R"({"prompt":"x"})",
                               "application/json");
    ASSERT_TRUE(early);
    EXPECT_EQ(early->status, 503);
    SchedulerOptions so{.parallel = parallel, .session = {.n_ctx = n_ctx, .n_threads = 2}, .prefill_chunk = 16};
    if (draft.enabled()) {
      auto d = make_draft_source(*stories(), draft, so.session);
      ASSERT_TRUE(d.ok()) << d.error().message();
      so.draft = std::move(*d);
    }
    auto s = BatchScheduler::create(*stories(), so);
    ASSERT_TRUE(s.ok()) << s.error().message();
    server_->set_ready(*stories(), std::move(*s));
    health = client_->Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
  }
  json post(const std::string& path, const json& body, int want_status = 200) {
    auto r = client_->Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, want_status) << r->body;
    return json::parse(r->body, nullptr, false);
  }
  double metric(const std::string& name) {
    auto r = client_->Get("/metrics");
    EXPECT_TRUE(r && r->status == 200);
    const auto at = r->body.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + name.size() + 2));
  }
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

std::string greedy_text(const std::string& prompt, int n) {
  auto session = Session::create(*stories(), {.n_ctx = 128, .n_threads = 2});
  Sampler greedy(SamplerParams{.temp = 0.0f, .seed = 1});
  auto ids = stories()->tokenizer().encode(prompt, true, true);
  for (int32_t t : ids) greedy.accept(t);
  auto g = Generator(**session, stories()->tokenizer()).generate(ids, greedy, {.max_tokens = n});
  return g.ok() ? g->text : "<error>";
}

TEST_F(HttpServer, CompletionsChatModelsAndMetrics) {
  start();
  json c = post("/v1/completions",
                {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}, {"logprobs", 2}});
  ASSERT_TRUE(c.contains("choices")) << c.dump();
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["choices"][0]["text"], greedy_text("Once upon a time", 20));
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["usage"]["completion_tokens"], 20);
  EXPECT_EQ(c["choices"][0]["logprobs"]["token_logprobs"].size(), 20u);
  EXPECT_EQ(c["choices"][0]["logprobs"]["top_logprobs"][0].size(), 2u);

  // Echo with logprobs and no new tokens: the scoring call of evaluation harnesses.
  json e = post("/v1/completions",
                {{"prompt", "Once upon a time there was"}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}});
  const json& lp = e["choices"][0]["logprobs"];
  EXPECT_EQ(e["choices"][0]["text"], "Once upon a time there was");
  ASSERT_EQ(lp["tokens"].size(), e["usage"]["prompt_tokens"].get<size_t>());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  for (size_t i = 1; i < lp["token_logprobs"].size(); ++i) EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);

  json chat = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                            {"max_tokens", 8},
                                            {"seed", 3},
                                            {"logprobs", true},
                                            {"top_logprobs", 1}});
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(chat["choices"][0]["logprobs"]["content"].size(), chat["usage"]["completion_tokens"].get<size_t>());

  auto models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "stories");
  EXPECT_EQ(metric("pocketlm_ready"), 1);
  EXPECT_GE(metric("pocketlm_generated_tokens_total"), 20);
  EXPECT_EQ(metric("pocketlm_kv_bytes_used"), 0);
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos);  // self-contained: nothing fetched from elsewhere
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
}

// What lm-eval's local-completions model needs: a batch of token-id prompts scored with echo + logprobs +
// max_tokens 1, one choice per prompt in order, each equal to the same prompt sent alone; the tokenizer endpoints.
TEST_F(HttpServer, HarnessBatchesAndTokenizerEndpoints) {
  start({}, 2, 256);
  const Tokenizer& tok = stories()->tokenizer();
  const std::vector<std::string> texts = {"Once upon a time there was a", "The cat sat",
                                          "Lily and Ben went to the park. They"};
  json batch = json::array();
  for (const auto& t : texts) batch.push_back(tok.encode(t, true, true));
  const json score = {{"max_tokens", 1}, {"echo", true}, {"logprobs", 1}, {"temperature", 0}};
  json req = score;
  req["prompt"] = batch;
  json b = post("/v1/completions", req);
  ASSERT_EQ(b["choices"].size(), texts.size()) << b.dump();
  size_t prompt_tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const json& c = b["choices"][i];
    EXPECT_EQ(c["index"], i);
    EXPECT_EQ(c["text"].get<std::string>().rfind(tok.decode(batch[i].get<std::vector<int32_t>>()), 0), 0u);
    // One row per prompt token and one for the generated (or end-of-generation) token: lm-eval slices [ctxlen:-1].
    EXPECT_EQ(c["logprobs"]["token_logprobs"].size(), batch[i].size() + 1);
    json alone_req = score;
    alone_req["prompt"] = batch[i];
    json alone = post("/v1/completions", alone_req);
    const json& a = alone["choices"][0]["logprobs"]["token_logprobs"];
    ASSERT_EQ(a.size(), c["logprobs"]["token_logprobs"].size());
    for (size_t k = 1; k < a.size(); ++k)
      EXPECT_NEAR(a[k].get<double>(), c["logprobs"]["token_logprobs"][k].get<double>(), 1e-4) << i << " " << k;
    prompt_tokens += batch[i].size();
  }
  EXPECT_EQ(b["usage"]["prompt_tokens"], prompt_tokens);

  json t = post("/tokenize", {{"prompt", "Once upon a time</s>"}, {"add_special_tokens", false}});
  std::vector<int32_t> want = tok.encode("Once upon a time", false, false);
  want.push_back(tok.eos());  // special tokens' texts are parsed, as Hugging Face tokenizers do
  EXPECT_EQ(t["tokens"].get<std::vector<int32_t>>(), want);
  EXPECT_EQ(t["count"], want.size());
  EXPECT_EQ(t["max_model_len"], 256);
  json with_bos = post("/tokenize", {{"prompt", "Once"}});
  EXPECT_EQ(with_bos["tokens"].get<std::vector<int32_t>>(), tok.encode("Once", true, true));
  json d = post("/detokenize", {{"tokens", tok.encode("Once upon a time", false, false)}});
  EXPECT_EQ(d["prompt"], "Once upon a time");
  auto info = client_->Get("/tokenizer_info");
  ASSERT_TRUE(info);
  json i = json::parse(info->body);
  EXPECT_EQ(i["eos_token"], tok.token_to_piece(tok.eos(), true));
  EXPECT_EQ(i["model_max_length"], 256);
  post("/tokenize", {{"prompt", 3}}, 400);
  post("/detokenize", {{"tokens", {1, 1 << 30}}}, 400);
  post("/v1/completions", {{"prompt", {{1, 2}, {1 << 30}}}}, 400);
}

// pocketlm serve --parallel 1 --draft-self q8_0: greedy replies equal the plain generate loop's, streamed or not,
// with drafted tokens kept (/metrics); a request asking for logprobs decodes plainly and gets them.
TEST_F(HttpServer, SpeculativeServingGivesThePlainGreedyText) {
  DraftConfig self;
  self.self_type = GgmlType::Q8_0;
  start({}, 1, 256, self);
  for (const std::string prompt : {"Once upon a time", "Tom had a red ball. He"}) {
    json c = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}});
    EXPECT_EQ(c["choices"][0]["text"], greedy_text(prompt, 40)) << prompt;
  }
  EXPECT_GT(metric("pocketlm_draft_accepted_total"), 0);
  json lp = post("/v1/completions",
                 {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}, {"logprobs", 1}});
  EXPECT_EQ(lp["choices"][0]["text"], greedy_text("Once upon a time", 20));
  EXPECT_EQ(lp["choices"][0]["logprobs"]["token_logprobs"].size(), 20u);
  auto r = client_->Post("/v1/completions",
                         json{{"prompt", "Lily"}, {"max_tokens", 30}, {"temperature", 0}, {"stream", true}}.dump(),
                         "application/json");
  ASSERT_TRUE(r);
  std::string text;
  for (size_t at = 0; (at = r->body.find("data: {", at)) != std::string::npos;) {
    const size_t end = r->body.find("\n\n", at);
    text += json::parse(r->body.substr(at + 6, end - at - 6))["choices"][0]["text"].get<std::string>();
    at = end;
  }
  EXPECT_EQ(text, greedy_text("Lily", 30));
}

TEST_F(HttpServer, StreamingSendsChunksThenDone) {
  start();
  std::string body;
  auto r = client_->Post("/v1/completions",
                         json{{"prompt", "Once upon a time"},
                              {"max_tokens", 20},
                              {"temperature", 0},
                              {"stream", true},
                              {"stream_options", {{"include_usage", true}}}}
                             .dump(),
                         "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  std::string text;
  int chunks = 0;
  bool done = false, usage = false;
  size_t at = 0;
  while ((at = r->body.find("data: ", at)) != std::string::npos) {
    const size_t end = r->body.find("\n\n", at);
    const std::string data = r->body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    json j = json::parse(data);
    if (j.contains("usage")) {
      usage = true;
      EXPECT_EQ(j["usage"]["completion_tokens"], 20);
      continue;
    }
    text += j["choices"][0]["text"].get<std::string>();
    ++chunks;
  }
  EXPECT_TRUE(done && usage);
  EXPECT_GE(chunks, 10);
  EXPECT_EQ(text, greedy_text("Once upon a time", 20));
}

TEST_F(HttpServer, ErrorStatusesAndTheServerStaysUp) {
  ServerOptions o;
  o.api_key = "sekrit";
  o.max_body_bytes = 256 * 1024;
  start(o);
  httplib::Headers auth = {{"Authorization", "Bearer sekrit"}};
  auto no_key = client_->Post("/v1/completions", R"({"prompt":"x"})", "application/json");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(json::parse(no_key->body)["error"]["type"], "authentication_error");
  auto wrong =
      client_->Post("/v1/completions", {{"Authorization", "Bearer nope"}}, R"({"prompt":"x"})", "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(client_->Get("/health")->status, 200);                                              // /health needs no key
  EXPECT_EQ(client_->Post("/tokenize", R"({"prompt":"x"})", "application/json")->status, 401);  // the tokenizer does
  EXPECT_EQ(client_->Get("/tokenizer_info")->status, 401);
  const auto call = [&](const std::string& path, const std::string& body) {
    return client_->Post(path, auth, body, "application/json");
  };
  auto ok = call("/v1/completions", R"({"prompt":"x","max_tokens":2})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto bad_json = call("/v1/chat/completions", "{\"messages\": [");
  EXPECT_EQ(bad_json->status, 400);
  auto bad_utf8 = call("/v1/completions", "{\"prompt\":\"\xc3\x28 \xff\"}");
  EXPECT_EQ(bad_utf8->status, 400);
  auto bad_type = call("/v1/completions", R"({"prompt":"x","max_tokens":"many"})");
  EXPECT_EQ(bad_type->status, 400);
  EXPECT_EQ(json::parse(bad_type->body)["error"]["param"], "max_tokens");
  std::string long_prompt;
  for (int i = 0; i < 300; ++i) long_prompt += "Once upon a time ";
  auto too_long = call("/v1/completions", json{{"prompt", long_prompt}}.dump());
  EXPECT_EQ(too_long->status, 400);
  EXPECT_EQ(json::parse(too_long->body)["error"]["code"], "context_length_exceeded");
  std::string stops = R"({"prompt":"x","stop":[)";
  for (int i = 0; i < 10000; ++i) stops += std::string(i ? "," : "") + "\"" + std::to_string(i) + "\"";
  stops += "]}";
  auto many_stops = call("/v1/completions", stops);
  EXPECT_EQ(many_stops->status, 400);
  auto huge = call("/v1/completions", json{{"prompt", std::string(300 * 1024, 'a')}}.dump());
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  auto missing = client_->Get("/v1/nothing", auth);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["message"], "no such endpoint");
  auto again = call("/v1/completions", R"({"prompt":"Once","max_tokens":3})");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST_F(HttpServer, SlowClientIsDroppedAfterTheTimeoutOthersAreServed) {
  ServerOptions o;
  o.timeout_seconds = 1;
  start(o);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string partial = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro";
  ASSERT_EQ(send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  // Meanwhile another client is served.
  auto r = client_->Post("/v1/completions", R"({"prompt":"Once","max_tokens":2})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // The silent client's connection is closed by the server within a few seconds.
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[512];
  const auto t0 = std::chrono::steady_clock::now();
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(n, 0) << "the server did not close the connection";
  EXPECT_LT(waited, 4.5);
  close(fd);
  EXPECT_EQ(client_->Get("/health")->status, 200);
}

TEST_F(HttpServer, ClientLeavingAStreamFreesItsSequence) {
  start({}, 1, 2048);
  {
    httplib::Client c("127.0.0.1", port_);
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"prompt", "Once upon a time"}, {"max_tokens", 100000}, {"stream", true}}.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };  // then hang up
    auto res = c.send(req);
    EXPECT_GE(chunks, 3);
  }
  // The sequence ends (cancelled) well before the context is full, and its KV blocks are back.
  for (int i = 0; i < 100 && metric("pocketlm_requests_active") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(metric("pocketlm_requests_active"), 0);
  EXPECT_EQ(metric("pocketlm_kv_bytes_used"), 0);
  EXPECT_LT(metric("pocketlm_generated_tokens_total"), 1500);  // not run on to the end of the context
  // The one slot is free again.
  json c = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 3}});
  EXPECT_EQ(c["usage"]["completion_tokens"], 3);
}

// A non-streamed request whose client hangs up is cancelled within a tick (50 ms) plus a forward step, not run
// on to its end: the sequence below would otherwise generate to the end of a 4096-token context (seconds).
TEST_F(HttpServer, ClientLeavingANonStreamedRequestFreesItsSequence) {
  start({}, 1, 4096);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body =
      json{{"prompt", "Once upon a time"}, {"max_tokens", 100000}, {"temperature", 0}, {"ignore_eos", true}}.dump();
  const std::string head =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  ASSERT_EQ(send(fd, (head + body).data(), head.size() + body.size(), 0),
            static_cast<ssize_t>(head.size() + body.size()));
  for (int i = 0; i < 500 && metric("pocketlm_forward_steps_total") < 20; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(metric("pocketlm_forward_steps_total"), 20) << "the request did not start";
  EXPECT_EQ(metric("pocketlm_requests_active"), 1);
  close(fd);  // hang up before the reply
  const auto t0 = std::chrono::steady_clock::now();
  while (metric("pocketlm_requests_active") != 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(metric("pocketlm_requests_active"), 0);
  EXPECT_LT(waited, 1.0) << "the sequence was not freed promptly";
  RecordProperty("freed_after_ms", static_cast<int>(waited * 1000));
  EXPECT_EQ(metric("pocketlm_requests_cancelled_total"), 1);
  EXPECT_EQ(metric("pocketlm_kv_bytes_used"), 0);
  const double generated = metric("pocketlm_generated_tokens_total");
  EXPECT_LT(generated, 2000);  // not run on to the end of the context (4092 tokens)
  // A client that stays is not taken for gone: a reply slower than the 50 ms tick arrives whole.
  json c = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 400}, {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(c["usage"]["completion_tokens"], 400);
  EXPECT_EQ(metric("pocketlm_requests_cancelled_total"), 1);
  EXPECT_EQ(metric("pocketlm_generated_tokens_total"), generated + 400);
}

}  // namespace
}  // namespace pocketlm::server
