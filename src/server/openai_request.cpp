#include "server/openai_request.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace pocketlm::server {

using json = nlohmann::json;

std::string error_json(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  // Messages may quote the client's bytes: replace what is not UTF-8 rather than throw.
  return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

struct Bad {
  ApiError e;
};

[[noreturn]] void fail(const std::string& param, const std::string& message) {
  ApiError e;
  e.param = param;
  e.message = message;
  throw Bad{e};
}

const char* type_name(const json& v) { return v.type_name(); }

bool get_bool(const json& body, const char* key, bool def) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(key, std::string("'") + key + "' must be a boolean, got " + type_name(*it));
  return it->get<bool>();
}

double get_number(const json& body, const char* key, double def, double lo, double hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_number()) fail(key, std::string("'") + key + "' must be a number, got " + type_name(*it));
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    fail(key,
         std::string("'") + key + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " + it->dump());
  return v;
}

int64_t get_int(const json& body, const char* key, int64_t def, int64_t lo, int64_t hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_number_integer()) fail(key, std::string("'") + key + "' must be an integer, got " + type_name(*it));
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(key, std::string("'") + key + "' is out of range");
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    fail(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  std::to_string(v));
  return v;
}

std::string content_text(const json& c, const std::string& param) {
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) fail(param, "'" + param + "' must be a string or an array of text parts, got " + type_name(c));
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) {
    const json& part = c[i];
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) fail(p, "'" + p + "' must be an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || type->get<std::string>() != "text")
      fail(p, "'" + p + "': only text parts are supported (type \"text\")");
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) fail(p + ".text", "'" + p + ".text' must be a string");
    out += text->get<std::string>();
  }
  return out;
}

void parse_messages(const json& body, CompletionRequest& r, const RequestLimits& lim) {
  auto it = body.find("messages");
  if (it == body.end()) fail("messages", "'messages' is required");
  if (!it->is_array()) fail("messages", std::string("'messages' must be an array, got ") + type_name(*it));
  if (it->empty()) fail("messages", "'messages' must hold at least one message");
  if (it->size() > lim.max_messages) fail("messages", "more than " + std::to_string(lim.max_messages) + " messages");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) fail(p, "'" + p + "' must be an object, got " + std::string(type_name(m)));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) fail(p + ".role", "'" + p + ".role' must be a string");
    std::string rs = role->get<std::string>();
    if (rs == "developer") rs = "system";
    if (rs != "system" && rs != "user" && rs != "assistant" && rs != "tool")
      fail(p + ".role", "'" + p + ".role' must be system, developer, user, assistant or tool, got \"" + rs + "\"");
    auto content = m.find("content");
    r.messages.push_back({rs, content == m.end() ? std::string() : content_text(*content, p + ".content")});
  }
}

std::vector<int32_t> token_ids(const json& a, const std::string& param) {
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (const json& t : a) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
      fail(param, "'" + param + "' token ids must be non-negative integers");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  if (ids.empty()) fail(param, "'" + param + "' is empty");
  return ids;
}

// The prompts: a string, [int, ...] (one prompt of token ids), [string, ...] or [[int, ...], ...] (a batch: one
// choice per prompt, as harnesses send them).
void parse_prompt(const json& body, CompletionRequest& r, const RequestLimits& lim) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) fail("prompt", "'prompt' is required");
  const json& p = *it;
  if (p.is_string()) {
    r.prompts.push_back({p.get<std::string>(), {}, false});
    return;
  }
  if (!p.is_array())
    fail("prompt", std::string("'prompt' must be a string, an array of strings or of token ids, got ") + type_name(p));
  if (p.empty()) fail("prompt", "'prompt' is empty");
  if (p[0].is_number()) {
    r.prompts.push_back({{}, token_ids(p, "prompt"), true});
    return;
  }
  if (p.size() > lim.max_prompts)
    fail("prompt",
         "at most " + std::to_string(lim.max_prompts) + " prompts in one request, got " + std::to_string(p.size()));
  for (size_t i = 0; i < p.size(); ++i) {
    const std::string param = "prompt[" + std::to_string(i) + "]";
    if (p[i].is_string())
      r.prompts.push_back({p[i].get<std::string>(), {}, false});
    else if (p[i].is_array())
      r.prompts.push_back({{}, token_ids(p[i], param), true});
    else
      fail(param, "'" + param + "' must be a string or an array of token ids, got " + std::string(type_name(p[i])));
  }
}

void parse_stop(const json& body, CompletionRequest& r, const RequestLimits& lim) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return;
  auto add = [&](const json& s) {
    if (!s.is_string())
      fail("stop", std::string("'stop' must be a string or an array of strings, got ") + type_name(s));
    std::string v = s.get<std::string>();
    if (v.size() > lim.max_stop_bytes)
      fail("stop", "a stop string is longer than " + std::to_string(lim.max_stop_bytes) + " bytes");
    if (!v.empty()) r.stop.push_back(std::move(v));
  };
  if (it->is_array()) {
    if (it->size() > lim.max_stop)
      fail("stop", "at most " + std::to_string(lim.max_stop) + " stop strings, got " + std::to_string(it->size()));
    for (const json& s : *it) add(s);
  } else {
    add(*it);
  }
}

json parse_object(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("", "the body is not valid JSON (or not UTF-8)");
  if (!j.is_object()) fail("", std::string("the body must be a JSON object, got ") + type_name(j));
  return j;
}

}  // namespace

ParseResult parse_request(Endpoint endpoint, std::string_view body, const RequestLimits& lim) {
  ParseResult out;
  try {
    const json j = parse_object(body);
    CompletionRequest r;
    r.endpoint = endpoint;
    if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
      if (!m->is_string()) fail("model", "'model' must be a string");
      r.model = m->get<std::string>();
    }
    if (endpoint == Endpoint::Chat)
      parse_messages(j, r, lim);
    else
      parse_prompt(j, r, lim);
    const int64_t n = get_int(j, "n", 1, 1, 1);
    (void)n;
    const int64_t cap = int64_t{1} << 30;
    r.max_tokens = get_int(j, "max_tokens", endpoint == Endpoint::Completion ? 16 : -1, 0, cap);
    if (endpoint == Endpoint::Chat) r.max_tokens = get_int(j, "max_completion_tokens", r.max_tokens, 0, cap);
    r.temperature = static_cast<float>(get_number(j, "temperature", 1.0, 0.0, 2.0));
    r.top_p = static_cast<float>(get_number(j, "top_p", 1.0, 0.0, 1.0));
    r.presence_penalty = static_cast<float>(get_number(j, "presence_penalty", 0.0, -2.0, 2.0));
    r.frequency_penalty = static_cast<float>(get_number(j, "frequency_penalty", 0.0, -2.0, 2.0));
    if (j.contains("seed") && !j["seed"].is_null())
      r.seed = static_cast<uint32_t>(
          get_int(j, "seed", 0, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
    parse_stop(j, r, lim);
    r.stream = get_bool(j, "stream", false);
    if (auto so = j.find("stream_options"); so != j.end() && !so->is_null()) {
      if (!so->is_object()) fail("stream_options", "'stream_options' must be an object");
      r.include_usage = get_bool(*so, "include_usage", false);
    }
    if (endpoint == Endpoint::Chat) {
      r.logprobs = get_bool(j, "logprobs", false);
      r.top_logprobs = static_cast<int>(get_int(j, "top_logprobs", 0, 0, lim.max_top_logprobs));
      if (r.top_logprobs > 0 && !r.logprobs) fail("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else {
      auto lp = j.find("logprobs");
      if (lp != j.end() && !lp->is_null()) {
        r.logprobs = true;
        r.top_logprobs = static_cast<int>(get_int(j, "logprobs", 0, 0, lim.max_top_logprobs));
      }
      r.echo = get_bool(j, "echo", false);
      if (r.stream && r.prompts.size() > 1)
        fail("prompt", "a streamed request takes one prompt, got " + std::to_string(r.prompts.size()));
    }
    r.ignore_eos = get_bool(j, "ignore_eos", false);
    out.request = std::move(r);
  } catch (const Bad& b) {
    out.error = b.e;
  } catch (const std::exception& e) {  // a JSON type error this code did not foresee: still the client's 400
    out.error.message = std::string("bad request: ") + e.what();
  }
  return out;
}

TokenizeParse parse_tokenize_request(std::string_view body, size_t max_text_bytes) {
  TokenizeParse out;
  try {
    const json j = parse_object(body);
    const char* key = j.contains("prompt") ? "prompt" : "content";
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) fail("prompt", "'prompt' must be a string");
    if (it->get_ref<const std::string&>().size() > max_text_bytes)
      fail("prompt", "'prompt' is longer than " + std::to_string(max_text_bytes) + " bytes");
    TokenizeRequest r;
    r.text = it->get<std::string>();
    r.add_special = get_bool(j, j.contains("add_special_tokens") ? "add_special_tokens" : "add_special", true);
    out.request = std::move(r);
  } catch (const Bad& b) {
    out.error = b.e;
  } catch (const std::exception& e) {
    out.error.message = std::string("bad request: ") + e.what();
  }
  return out;
}

DetokenizeParse parse_detokenize_request(std::string_view body, size_t max_tokens) {
  DetokenizeParse out;
  try {
    const json j = parse_object(body);
    auto it = j.find("tokens");
    if (it == j.end() || !it->is_array()) fail("tokens", "'tokens' must be an array of token ids");
    if (it->size() > max_tokens) fail("tokens", "more than " + std::to_string(max_tokens) + " tokens");
    out.tokens = it->empty() ? std::vector<int32_t>{} : token_ids(*it, "tokens");
  } catch (const Bad& b) {
    out.error = b.e;
  } catch (const std::exception& e) {
    out.error.message = std::string("bad request: ") + e.what();
  }
  return out;
}

}  // namespace pocketlm::server
