#include "server/http_server.h"

#include <condition_variable>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/chat_page.h"
#include "server/peer_watch.h"
#include "server/utf8_stream.h"
#include "tokenizer/chat_template.h"
#include "util/stats.h"

namespace pocketlm::server {

using json = nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// What one request's callback hands from the scheduler thread to its HTTP thread.
struct Channel {
  struct Item {
    int32_t token = -1;
    std::string text;
    bool has_logprob = false;
    TokenLogprob logprob;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> items;
  bool done = false;
  SeqEvent end;
  std::vector<TokenLogprob> prompt_logprobs;
  bool has_end_logprob = false;
  TokenLogprob end_logprob;  // the end-of-generation token's, when it ended the reply and logprobs were asked
  std::atomic<bool> client_gone{false};
  std::atomic<uint64_t> id{0};

  // The callback owns a reference: the scheduler thread may still call it after the HTTP side has let go
  // (a client that hung up frees its response, and with it the content provider's reference, before the
  // scheduler sees the cancel), so the channel must live until the scheduler drops the callback.
  static SeqCallback callback(std::shared_ptr<Channel> self) {
    return [self = std::move(self)](const SeqEvent& ev) {
      Channel& c = *self;
      std::lock_guard<std::mutex> lk(c.mu);
      if (ev.kind == SeqEvent::Kind::Token) {
        Item it;
        it.token = ev.token;
        it.text = std::string(ev.text);
        if (ev.logprob) {
          it.has_logprob = true;
          it.logprob = *ev.logprob;
        }
        c.items.push_back(std::move(it));
      } else {
        c.end = ev;
        c.end.text = {};
        if (ev.logprob) {
          c.has_end_logprob = true;
          c.end_logprob = *ev.logprob;
        }
        c.end.logprob = nullptr;
        if (ev.prompt_logprobs) c.prompt_logprobs = *ev.prompt_logprobs;
        c.end.prompt_logprobs = nullptr;
        c.done = true;
      }
      c.cv.notify_all();
      return !c.client_gone.load();
    };
  }
};

const char* finish_reason(StopReason r) {
  switch (r) {
    case StopReason::EndOfGeneration:
    case StopReason::StopString: return "stop";
    case StopReason::MaxTokens:
    case StopReason::ContextFull: return "length";
    case StopReason::Callback: return "cancelled";
  }
  return "stop";
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  httplib::Server http;
  std::thread thread;
  std::atomic<bool> ready{false}, stopped{false};
  const Model* model = nullptr;
  std::unique_ptr<BatchScheduler> scheduler;
  std::string tmpl;
  std::atomic<uint64_t> next_id{1};
  std::mutex stats_mu;
  std::map<int, int64_t> responses;  // by HTTP status
  double started = now_seconds();
  int64_t created_at = static_cast<int64_t>(std::time(nullptr));

  ApiError not_ready() const {
    ApiError e;
    e.status = 503;
    e.type = "unavailable_error";
    e.message = "the model is loading";
    return e;
  }
  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(error_json(e), "application/json");
  }

  std::string piece(int32_t t) const { return model->tokenizer().token_to_piece(t); }

  json chat_logprob(const TokenLogprob& lp) const {
    json top = json::array();
    for (const auto& [id, l] : lp.top)
      top.push_back({{"token", piece(id)}, {"logprob", l}, {"bytes", bytes_of(piece(id))}});
    return {{"token", piece(lp.token)},
            {"logprob", lp.logprob},
            {"bytes", bytes_of(piece(lp.token))},
            {"top_logprobs", top}};
  }

  // OpenAI's legacy completions logprobs object over (token, logprob or none, top) rows.
  json completion_logprobs(const std::vector<int32_t>& tokens, const std::vector<const TokenLogprob*>& lps,
                           size_t offset0) const {
    json toks = json::array(), lp = json::array(), top = json::array(), off = json::array();
    size_t offset = offset0;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string p = piece(tokens[i]);
      toks.push_back(p);
      off.push_back(offset);
      offset += p.size();
      if (lps[i] == nullptr) {
        lp.push_back(nullptr);
        top.push_back(nullptr);
        continue;
      }
      lp.push_back(lps[i]->logprob);
      json t = json::object();
      for (const auto& [id, l] : lps[i]->top) t[piece(id)] = l;
      top.push_back(t);
    }
    return {{"tokens", toks}, {"token_logprobs", lp}, {"top_logprobs", top}, {"text_offset", off}};
  }

  json chat_choice(const Channel& ch, const CompletionRequest& r) const {
    std::string text;
    json content_lp = json::array();
    for (const Channel::Item& it : ch.items) {
      text += it.text;
      if (it.token >= 0 && it.has_logprob) content_lp.push_back(chat_logprob(it.logprob));
    }
    return {{"index", 0},
            {"message", {{"role", "assistant"}, {"content", text}}},
            {"logprobs", r.logprobs ? json{{"content", content_lp}} : json(nullptr)},
            {"finish_reason", finish_reason(ch.end.stop)}};
  }

  // A completions choice. With logprobs: a row per generated token, then the end-of-generation token when one
  // ended the reply (its text is not in "text"); with echo, the prompt's rows first (the first has no logprob).
  json completion_choice(size_t index, const Channel& ch, const std::vector<int32_t>& prompt,
                         const std::string& prompt_text, const CompletionRequest& r) const {
    std::string text;
    std::vector<int32_t> toks;
    std::vector<const TokenLogprob*> lps;
    if (r.logprobs && r.echo) {
      toks = prompt;
      lps.push_back(nullptr);
      for (const TokenLogprob& p : ch.prompt_logprobs) lps.push_back(&p);
      lps.resize(toks.size(), nullptr);
    }
    for (const Channel::Item& it : ch.items) {
      text += it.text;
      if (it.token < 0) continue;
      toks.push_back(it.token);
      lps.push_back(it.has_logprob ? &it.logprob : nullptr);
    }
    json lp = nullptr;
    if (r.logprobs) {
      lp = completion_logprobs(toks, lps, 0);
      if (ch.end.token >= 0 && ch.has_end_logprob)
        append_end_row(lp, ch.end_logprob, r.echo ? prompt_text.size() + text.size() : text.size());
    }
    return {{"index", index},
            {"text", r.echo ? prompt_text + text : text},
            {"logprobs", lp},
            {"finish_reason", finish_reason(ch.end.stop)}};
  }

  // The end-of-generation token's row, its special text shown (e.g. "<|im_end|>") though no text carries it.
  void append_end_row(json& lp, const TokenLogprob& end, size_t offset) const {
    lp["tokens"].push_back(model->tokenizer().token_to_piece(end.token, true));
    lp["token_logprobs"].push_back(end.logprob);
    json t = json::object();
    for (const auto& [id, l] : end.top) t[piece(id)] = l;
    lp["top_logprobs"].push_back(t);
    lp["text_offset"].push_back(offset);
  }

  void handle(Endpoint ep, const httplib::Request& req, httplib::Response& res);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
  void tokenizer_info(httplib::Response& res);
  std::string metrics_text();
};

void Server::Impl::handle(Endpoint ep, const httplib::Request& req, httplib::Response& res) {
  if (!ready.load(std::memory_order_acquire)) return send_error(res, not_ready());
  ParseResult parsed = parse_request(ep, req.body, opts.limits);
  if (!parsed.request) return send_error(res, parsed.error);
  const CompletionRequest& r = *parsed.request;
  const Tokenizer& tok = model->tokenizer();

  // The prompts as token ids (and as text, for echo): chat has one, completions one or a harness's batch.
  struct Prompt {
    std::vector<int32_t> ids;
    std::string text;
  };
  std::vector<Prompt> prompts;
  if (ep == Endpoint::Chat) {
    auto text = apply_chat_template(tmpl, r.messages, true);
    if (!text.ok()) {
      ApiError e;
      e.status = 500;
      e.type = "server_error";
      e.message = text.error().message();
      return send_error(res, e);
    }
    prompts.push_back({tok.encode(*text, true, true), {}});
  } else {
    for (const PromptInput& in : r.prompts) {
      if (in.is_tokens)
        prompts.push_back({in.tokens, tok.decode(in.tokens)});
      else
        prompts.push_back({tok.encode(in.text, true, true), in.text});
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int32_t>& prompt = prompts[i].ids;
    ApiError e;
    e.param = ep == Endpoint::Chat ? "messages" : prompts.size() > 1 ? "prompt[" + std::to_string(i) + "]" : "prompt";
    for (int32_t t : prompt)
      if (t >= model->config().n_vocab) {
        e.message = "token id " + std::to_string(t) + " is not in the vocabulary (" +
                    std::to_string(model->config().n_vocab) + " tokens)";
        return send_error(res, e);
      }
    if (prompt.empty()) {
      e.message = "the prompt is empty";
      return send_error(res, e);
    }
    if (static_cast<int64_t>(prompt.size()) >= scheduler->n_ctx()) {
      e.code = "context_length_exceeded";
      e.message = "the prompt is " + std::to_string(prompt.size()) + " tokens; this server's context is " +
                  std::to_string(scheduler->n_ctx()) +
                  " tokens (pocketlm serve -c), and at least one must be left to generate";
      return send_error(res, e);
    }
  }

  SeqRequest sr;
  sr.sampling.temp = r.temperature;
  sr.sampling.top_p = r.top_p;
  sr.sampling.top_k = 0;  // OpenAI's sampling: temperature and top_p only
  sr.sampling.min_p = 0.0f;
  sr.sampling.presence_penalty = r.presence_penalty;
  sr.sampling.frequency_penalty = r.frequency_penalty;
  if (r.seed) sr.sampling.seed = *r.seed;
  sr.max_tokens = r.max_tokens;
  sr.ignore_eos = r.ignore_eos;
  sr.stop = r.stop;
  sr.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  sr.prompt_logprobs = r.echo && r.logprobs;

  // One sequence per prompt; they are scheduled like separate requests (and may decode together).
  std::vector<std::shared_ptr<Channel>> chs;
  const auto abandon = [&] {
    for (auto& c : chs) {
      c->client_gone = true;
      scheduler->cancel(c->id);
    }
  };
  for (const Prompt& p : prompts) {
    sr.prompt = p.ids;
    auto ch = std::make_shared<Channel>();
    auto id = scheduler->submit(sr, Channel::callback(ch));
    if (!id.ok()) {
      abandon();
      ApiError e;
      const std::string& m = id.error().message();
      if (m.find("queue is full") != std::string::npos || m.find("KV budget") != std::string::npos) {
        e.status = 503;
        e.type = "unavailable_error";
      }
      e.message = m;
      return send_error(res, e);
    }
    ch->id = *id;
    chs.push_back(std::move(ch));
  }
  const std::string rid = (ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const std::string model_name = opts.model_name;
  const auto fail_status = [](const SeqEvent& end) {
    ApiError e;
    e.message = end.message;
    if (end.error == SeqEvent::Error::Internal) {
      e.status = 500;
      e.type = "server_error";
    } else {
      e.status = 503;
      e.type = "unavailable_error";
    }
    return e;
  };

  if (!r.stream) {
    // Wait, watching the client: one that hangs up frees its sequences now, not when they would have ended.
    // Its socket is looked up only once a reply takes longer than a tick (most scoring calls do not).
    std::optional<PeerWatch> watch;
    bool looked = false;
    for (auto& ch : chs) {
      for (;;) {
        {
          std::unique_lock<std::mutex> lk(ch->mu);
          if (ch->cv.wait_for(lk, std::chrono::milliseconds(50), [&] { return ch->done; })) break;
        }
        if (!looked) {
          looked = true;
          watch = PeerWatch::find(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
        }
        if (watch && watch->peer_gone()) {
          abandon();
          ApiError e;
          e.status = 499;  // nginx's "client closed request": no one reads it, /metrics counts it
          e.message = "the client closed the connection";
          return send_error(res, e);
        }
      }
    }
    json choices = json::array();
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (size_t i = 0; i < chs.size(); ++i) {
      const Channel& ch = *chs[i];
      if (ch.end.kind == SeqEvent::Kind::Failed) return send_error(res, fail_status(ch.end));
      prompt_tokens += ch.end.prompt_tokens;
      completion_tokens += ch.end.completion_tokens;
      choices.push_back(ep == Endpoint::Chat ? chat_choice(ch, r)
                                             : completion_choice(i, ch, prompts[i].ids, prompts[i].text, r));
    }
    const json usage = {{"prompt_tokens", prompt_tokens},
                        {"completion_tokens", completion_tokens},
                        {"total_tokens", prompt_tokens + completion_tokens}};
    json body = {{"id", rid},          {"object", ep == Endpoint::Chat ? "chat.completion" : "text_completion"},
                 {"created", created}, {"model", model_name},
                 {"choices", choices}, {"usage", usage}};
    res.set_content(dump(body), "application/json");
    return;
  }

  std::shared_ptr<Channel> ch = chs[0];
  const std::string& prompt_text = prompts[0].text;
  // Streaming: server-sent events, one chunk per released piece of text, then the finish chunk and [DONE].
  struct StreamState {
    bool started = false, finished = false;
    std::string pending;  // text held back until it ends on a whole UTF-8 character
  };
  auto state = std::make_shared<StreamState>();
  BatchScheduler* sched = scheduler.get();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, ch, state, ep, rid, created, model_name, echo_text = r.echo ? prompt_text : std::string(),
       logprobs = r.logprobs, include_usage = r.include_usage, fail_status](size_t, httplib::DataSink& sink) {
        const auto send = [&](const json& j) {
          const std::string s = "data: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        const auto chunk = [&](const json& delta_or_text, const json& lp, const json& finish) {
          json choice = ep == Endpoint::Chat
                            ? json{{"index", 0}, {"delta", delta_or_text}, {"logprobs", lp}, {"finish_reason", finish}}
                            : json{{"index", 0}, {"text", delta_or_text}, {"logprobs", lp}, {"finish_reason", finish}};
          return json{{"id", rid},
                      {"object", ep == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", model_name},
                      {"choices", json::array({choice})}};
        };
        if (!state->started) {
          state->started = true;
          if (ep == Endpoint::Chat && !send(chunk(json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)))
            return false;
          if (!echo_text.empty() && !send(chunk(echo_text, nullptr, nullptr))) return false;
        }
        std::deque<Channel::Item> items;
        bool done;
        SeqEvent end;
        json end_lp = nullptr;
        {
          std::unique_lock<std::mutex> lk(ch->mu);
          ch->cv.wait_for(lk, std::chrono::milliseconds(500), [&] { return ch->done || !ch->items.empty(); });
          items.swap(ch->items);
          done = ch->done;
          end = ch->end;
          if (done && ep == Endpoint::Completion && logprobs && end.token >= 0 && ch->has_end_logprob) {
            end_lp = {{"tokens", json::array()},
                      {"token_logprobs", json::array()},
                      {"top_logprobs", json::array()},
                      {"text_offset", json::array()}};
            append_end_row(end_lp, ch->end_logprob, 0);
          }
        }
        for (const Channel::Item& it : items) {
          state->pending += it.text;
          const size_t n = done ? state->pending.size() : complete_utf8_prefix(state->pending);
          const std::string text = state->pending.substr(0, n);
          state->pending.erase(0, n);
          json lp = nullptr;
          if (logprobs && it.has_logprob) {
            if (ep == Endpoint::Chat)
              lp = json{{"content", json::array({chat_logprob(it.logprob)})}};
            else
              lp = completion_logprobs({it.token}, {&it.logprob}, 0);
          }
          if (text.empty() && lp.is_null()) continue;
          const json payload = ep == Endpoint::Chat ? json{{"content", text}} : json(text);
          if (!send(chunk(payload, lp, nullptr))) return false;
        }
        if (!done) return true;
        if (end.kind == SeqEvent::Kind::Failed) {
          send(json::parse(error_json(fail_status(end))));
        } else {
          if (!state->pending.empty())
            send(chunk(ep == Endpoint::Chat ? json{{"content", state->pending}} : json(state->pending), nullptr,
                       nullptr));
          send(chunk(ep == Endpoint::Chat ? json::object() : json(""), end_lp, finish_reason(end.stop)));
          if (include_usage) {
            json u = {{"id", rid},
                      {"object", ep == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", model_name},
                      {"choices", json::array()},
                      {"usage",
                       {{"prompt_tokens", end.prompt_tokens},
                        {"completion_tokens", end.completion_tokens},
                        {"total_tokens", end.prompt_tokens + end.completion_tokens}}}};
            send(u);
          }
        }
        const std::string fin = "data: [DONE]\n\n";
        sink.write(fin.data(), fin.size());
        state->finished = true;
        sink.done();
        return true;
      },
      [ch, sched](bool) {
        // The response is over: finished, or the client went away. A sequence still running is ended now.
        bool done;
        {
          std::lock_guard<std::mutex> lk(ch->mu);
          done = ch->done;
        }
        if (!done) {
          ch->client_gone = true;
          sched->cancel(ch->id);
        }
      });
}

// The tokenizer endpoints vLLM serves (lm-eval's local-completions model finds and uses them as its tokenizer,
// so a harness needs no Hugging Face tokenizer download): /tokenize, /detokenize, /tokenizer_info.
void Server::Impl::tokenize(const httplib::Request& req, httplib::Response& res) {
  if (!ready.load(std::memory_order_acquire)) return send_error(res, not_ready());
  TokenizeParse p = parse_tokenize_request(req.body, opts.max_body_bytes);
  if (!p.request) return send_error(res, p.error);
  const std::vector<int32_t> ids =
      model->tokenizer().encode(p.request->text, p.request->add_special, /*parse_special=*/true);
  res.set_content(dump(json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", scheduler->n_ctx()}}),
                  "application/json");
}

void Server::Impl::detokenize(const httplib::Request& req, httplib::Response& res) {
  if (!ready.load(std::memory_order_acquire)) return send_error(res, not_ready());
  DetokenizeParse p = parse_detokenize_request(req.body);
  if (!p.tokens) return send_error(res, p.error);
  for (int32_t t : *p.tokens)
    if (t >= model->config().n_vocab) {
      ApiError e;
      e.param = "tokens";
      e.message = "token id " + std::to_string(t) + " is not in the vocabulary (" +
                  std::to_string(model->config().n_vocab) + " tokens)";
      return send_error(res, e);
    }
  res.set_content(dump(json{{"prompt", model->tokenizer().decode(*p.tokens)}}), "application/json");
}

void Server::Impl::tokenizer_info(httplib::Response& res) {
  if (!ready.load(std::memory_order_acquire)) return send_error(res, not_ready());
  const Tokenizer& tok = model->tokenizer();
  const auto special = [&](int32_t id) { return id >= 0 ? json(tok.token_to_piece(id, true)) : json(nullptr); };
  json info = {{"tokenizer_class", "pocketlm"},          {"bos_token", special(tok.bos())},
               {"eos_token", special(tok.eos())},        {"add_bos_token", tok.add_bos()},
               {"model_max_length", scheduler->n_ctx()}, {"vocab_size", model->config().n_vocab}};
  if (tmpl.find("{%") != std::string::npos || tmpl.find("{{") != std::string::npos)
    info["chat_template"] = tmpl;  // Jinja only
  res.set_content(dump(info), "application/json");
}

std::string Server::Impl::metrics_text() {
  std::string out;
  const auto metric = [&](const char* name, const char* type, const char* help, double v,
                          const std::string& labels = "") {
    if (labels.empty() || labels.find("first") != std::string::npos) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    std::string l = labels;
    if (auto p = l.find(",first"); p != std::string::npos) l.erase(p, 6);
    out += std::string(name) + (l.empty() ? "" : "{" + l + "}") + " " + buf + "\n";
  };
  metric("pocketlm_ready", "gauge", "1 when the model is loaded", ready ? 1 : 0);
  metric("pocketlm_uptime_seconds", "gauge", "seconds since start", now_seconds() - started);
  if (ready) {
    const SchedulerMetrics m = scheduler->metrics();
    metric("pocketlm_requests_total", "counter", "generation requests ended, by outcome",
           static_cast<double>(m.requests_done), "outcome=\"ok\",first");
    metric("pocketlm_requests_total", "counter", "", static_cast<double>(m.requests_failed), "outcome=\"failed\"");
    metric("pocketlm_requests_cancelled_total", "counter",
           "requests ended early because the client went away (counted as ok too)",
           static_cast<double>(m.requests_cancelled));
    metric("pocketlm_prompt_tokens_total", "counter", "prompt tokens processed", static_cast<double>(m.prompt_tokens));
    metric("pocketlm_generated_tokens_total", "counter", "tokens generated", static_cast<double>(m.generated_tokens));
    metric("pocketlm_forward_steps_total", "counter", "batched forward steps", static_cast<double>(m.steps));
    metric("pocketlm_forward_tokens_total", "counter", "tokens through the forward steps, all sequences",
           static_cast<double>(m.step_rows));
    metric("pocketlm_forward_seconds_total", "counter", "seconds inside forward steps", m.busy_seconds);
    metric("pocketlm_tokens_per_second", "gauge", "tokens through the forward steps per second of step time",
           m.busy_seconds > 0 ? static_cast<double>(m.step_rows) / m.busy_seconds : 0);
    metric("pocketlm_requests_active", "gauge", "sequences decoding", m.active);
    metric("pocketlm_requests_queued", "gauge", "requests waiting for a slot or KV memory", m.queued);
    metric("pocketlm_kv_bytes_used", "gauge", "KV cache bytes held by sequences", static_cast<double>(m.kv_bytes_used));
    metric("pocketlm_kv_bytes_peak", "gauge", "most KV cache bytes held at once", static_cast<double>(m.kv_peak_bytes));
    if (scheduler->options().draft) {
      metric("pocketlm_draft_tokens_total", "counter", "tokens the draft proposed (speculative decoding)",
             static_cast<double>(m.draft_tokens));
      metric("pocketlm_draft_accepted_total", "counter", "drafted tokens the target kept",
             static_cast<double>(m.draft_accepted));
    }
    metric("pocketlm_kv_bytes_capacity", "gauge", "the KV budget (--kv-budget)",
           static_cast<double>(m.kv_bytes_capacity));
  }
  std::lock_guard<std::mutex> lk(stats_mu);
  bool first = true;
  for (const auto& [status, n] : responses) {
    metric("pocketlm_http_responses_total", "counter", "HTTP responses by status", static_cast<double>(n),
           "status=\"" + std::to_string(status) + "\"" + (first ? ",first" : ""));
    first = false;
  }
  metric("pocketlm_peak_rss_bytes", "gauge", "the process's peak resident memory",
         static_cast<double>(peak_rss_bytes()));
  metric("pocketlm_rss_bytes", "gauge", "the process's resident memory", static_cast<double>(current_rss_bytes()));
  return out;
}

Server::Server(ServerOptions opts) : impl_(std::make_unique<Impl>()) { impl_->opts = std::move(opts); }

Server::~Server() { stop(); }

bool Server::ready() const { return impl_->ready.load(); }

void Server::set_ready(const Model& model, std::unique_ptr<BatchScheduler> scheduler) {
  Impl& s = *impl_;
  s.model = &model;
  s.scheduler = std::move(scheduler);
  s.tmpl = s.opts.chat_template;
  if (s.tmpl.empty()) {
    auto t = model.gguf().get_string("tokenizer.chat_template");
    s.tmpl = t.ok() ? std::string(*t) : "chatml";
  }
  if (s.opts.model_name.empty()) s.opts.model_name = "pocketlm";
  s.ready.store(true, std::memory_order_release);
}

Expected<int> Server::start() {
  Impl& s = *impl_;
  httplib::Server& h = s.http;
  const int threads = s.opts.http_threads > 0 ? s.opts.http_threads : 32;
  h.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  h.set_read_timeout(s.opts.timeout_seconds, 0);
  h.set_write_timeout(s.opts.timeout_seconds, 0);
  h.set_idle_interval(0, 0);
  h.set_keep_alive_timeout(std::min(s.opts.timeout_seconds, 5));
  h.set_payload_max_length(s.opts.max_body_bytes);
  // SO_REUSEADDR, not httplib's default SO_REUSEPORT: a restarted server binds past TIME_WAIT connections,
  // and a second server on the same port is refused rather than silently sharing it.
  h.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  h.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    const bool guarded = req.path.rfind("/v1/", 0) == 0 || req.path == "/tokenize" || req.path == "/detokenize" ||
                         req.path == "/tokenizer_info";
    if (s.opts.api_key.empty() || !guarded) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + s.opts.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    ApiError e;
    e.status = 401;
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    e.message =
        req.has_header("Authorization") ? "the API key is wrong" : "an API key is required (Authorization: Bearer KEY)";
    Impl::send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  });
  h.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.status = res.status;
    e.type = res.status >= 500 ? "server_error" : "invalid_request_error";
    e.message = res.status == 413   ? "the request body is larger than the server's limit"
                : res.status == 404 ? "no such endpoint"
                                    : "HTTP status " + std::to_string(res.status);
    res.set_content(error_json(e), "application/json");
  });
  h.set_logger([&s](const httplib::Request&, const httplib::Response& res) {
    std::lock_guard<std::mutex> lk(s.stats_mu);
    ++s.responses[res.status];
  });
  h.Post("/v1/chat/completions",
         [&s](const httplib::Request& q, httplib::Response& r) { s.handle(Endpoint::Chat, q, r); });
  h.Post("/v1/completions",
         [&s](const httplib::Request& q, httplib::Response& r) { s.handle(Endpoint::Completion, q, r); });
  h.Post("/tokenize", [&s](const httplib::Request& q, httplib::Response& r) { s.tokenize(q, r); });
  h.Post("/detokenize", [&s](const httplib::Request& q, httplib::Response& r) { s.detokenize(q, r); });
  h.Get("/tokenizer_info", [&s](const httplib::Request&, httplib::Response& r) { s.tokenizer_info(r); });
  h.Get("/v1/models", [&s](const httplib::Request&, httplib::Response& res) {
    if (!s.ready) return Impl::send_error(res, s.not_ready());
    json m = {{"id", s.opts.model_name},
              {"object", "model"},
              {"created", s.created_at},
              {"owned_by", "pocketlm"},
              {"meta",
               {{"n_ctx", s.scheduler->n_ctx()},
                {"n_vocab", s.model->config().n_vocab},
                {"parallel", s.scheduler->options().parallel}}}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  h.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    res.status = s.ready ? 200 : 503;
    res.set_content(s.ready ? R"({"status":"ok"})" : R"({"status":"loading"})", "application/json");
  });
  h.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(s.metrics_text(), "text/plain; version=0.0.4");
  });
  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    const std::string_view page = chat_page_html();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  const int port = s.opts.port == 0 ? h.bind_to_any_port(s.opts.host)
                                    : (h.bind_to_port(s.opts.host, s.opts.port) ? s.opts.port : -1);
  if (port < 0)
    return Error("cannot listen on " + s.opts.host + ":" + std::to_string(s.opts.port) +
                 " (in use, or not an address of this machine)");
  s.thread = std::thread([&s] {
    s.http.listen_after_bind();
    s.stopped = true;
  });
  return port;
}

void Server::stop() {
  if (!impl_) return;
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->scheduler.reset();  // ends what still runs (ShuttingDown) before the model goes
}

void Server::wait() {
  while (!impl_->stopped) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

}  // namespace pocketlm::server
