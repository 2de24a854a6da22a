// The OpenAI request parser: the fields clients send, their defaults, and an error (status, field, message)
// for every malformed body rather than an exception.
#include <gtest/gtest.h>

#include "server/openai_request.h"
#include "server/utf8_stream.h"

namespace pocketlm::server {
namespace {

TEST(OpenAiRequest, ChatFieldsAndDefaults) {
  auto r = parse_request(Endpoint::Chat, R"({"model":"x","messages":[{"role":"system","content":"Be brief."},
      {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
      "temperature":0,"top_p":0.5,"seed":7,"stop":["\n\n","END"],"stream":true,"stream_options":{"include_usage":true},
      "logprobs":true,"top_logprobs":3,"max_completion_tokens":12,"unknown_field":{"ignored":1}})");
  ASSERT_TRUE(r.request) << r.error.message;
  const CompletionRequest& q = *r.request;
  ASSERT_EQ(q.messages.size(), 2u);
  EXPECT_EQ(q.messages[1].content, "Hi there");
  EXPECT_EQ(q.temperature, 0.0f);
  EXPECT_EQ(q.top_p, 0.5f);
  EXPECT_EQ(q.seed, 7u);
  EXPECT_EQ(q.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(q.stream && q.include_usage && q.logprobs);
  EXPECT_EQ(q.top_logprobs, 3);
  EXPECT_EQ(q.max_tokens, 12);
  auto d = parse_request(Endpoint::Chat, R"({"messages":[{"role":"developer","content":"x"}]})");
  ASSERT_TRUE(d.request);
  EXPECT_EQ(d.request->messages[0].role, "system");
  EXPECT_EQ(d.request->max_tokens, -1);
  EXPECT_EQ(d.request->temperature, 1.0f);
  EXPECT_FALSE(d.request->seed);
}

TEST(OpenAiRequest, CompletionPromptForms) {
  auto s =
      parse_request(Endpoint::Completion, R"({"prompt":"Once","logprobs":2,"echo":true,"max_tokens":0,"stop":"."})");
  ASSERT_TRUE(s.request) << s.error.message;
  ASSERT_EQ(s.request->prompts.size(), 1u);
  EXPECT_EQ(s.request->prompts[0].text, "Once");
  EXPECT_TRUE(s.request->logprobs && s.request->echo);
  EXPECT_EQ(s.request->top_logprobs, 2);
  EXPECT_EQ(s.request->max_tokens, 0);
  EXPECT_EQ(s.request->stop, std::vector<std::string>{"."});
  EXPECT_EQ(parse_request(Endpoint::Completion, R"({"prompt":"x"})").request->max_tokens, 16);  // OpenAI's default
  auto one = parse_request(Endpoint::Completion, R"({"prompt":["text"]})");
  ASSERT_TRUE(one.request);
  ASSERT_EQ(one.request->prompts.size(), 1u);
  EXPECT_EQ(one.request->prompts[0].text, "text");
  auto ids = parse_request(Endpoint::Completion, R"({"prompt":[[1,2,3]]})");
  ASSERT_TRUE(ids.request);
  ASSERT_EQ(ids.request->prompts.size(), 1u);
  EXPECT_TRUE(ids.request->prompts[0].is_tokens);
  EXPECT_EQ(ids.request->prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  auto flat = parse_request(Endpoint::Completion, R"({"prompt":[4,5]})");
  ASSERT_TRUE(flat.request);
  ASSERT_EQ(flat.request->prompts.size(), 1u);
  EXPECT_EQ(flat.request->prompts[0].tokens, (std::vector<int32_t>{4, 5}));
  // A harness's batch: one choice per prompt, in order; text and token prompts may mix.
  auto batch = parse_request(Endpoint::Completion, R"({"prompt":[[1,2],"two",[3]],"ignore_eos":true})");
  ASSERT_TRUE(batch.request) << batch.error.message;
  ASSERT_EQ(batch.request->prompts.size(), 3u);
  EXPECT_EQ(batch.request->prompts[0].tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(batch.request->prompts[1].text, "two");
  EXPECT_FALSE(batch.request->prompts[1].is_tokens);
  EXPECT_EQ(batch.request->prompts[2].tokens, (std::vector<int32_t>{3}));
  EXPECT_TRUE(batch.request->ignore_eos);
}

TEST(OpenAiRequest, TokenizeAndDetokenizeBodies) {
  auto t = parse_tokenize_request(R"({"prompt":"Hi <|im_end|>","add_special_tokens":false})");
  ASSERT_TRUE(t.request) << t.error.message;
  EXPECT_EQ(t.request->text, "Hi <|im_end|>");
  EXPECT_FALSE(t.request->add_special);
  auto llama = parse_tokenize_request(R"({"content":"x"})");  // llama.cpp's field name
  ASSERT_TRUE(llama.request);
  EXPECT_EQ(llama.request->text, "x");
  EXPECT_TRUE(llama.request->add_special);
  auto d = parse_detokenize_request(R"({"tokens":[1,2,3]})");
  ASSERT_TRUE(d.tokens);
  EXPECT_EQ(*d.tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(parse_detokenize_request(R"({"tokens":[]})").tokens->empty());
  const auto bad_t = [](const std::string& body, const std::string& param) {
    auto r = parse_tokenize_request(body, 16);
    EXPECT_FALSE(r.request) << body;
    EXPECT_EQ(r.error.status, 400);
    EXPECT_EQ(r.error.param, param) << body << ": " << r.error.message;
  };
  bad_t("{", "");
  bad_t(R"({"prompt":3})", "prompt");
  bad_t(R"({"prompt":"this is longer than sixteen bytes"})", "prompt");
  bad_t(R"({"prompt":"x","add_special_tokens":"no"})", "add_special_tokens");
  for (const char* body : {R"({})", R"({"tokens":"1 2"})", R"({"tokens":[1,-2]})", R"({"tokens":[1.5]})", R"([1])"}) {
    auto r = parse_detokenize_request(body);
    EXPECT_FALSE(r.tokens) << body;
    EXPECT_EQ(r.error.status, 400);
  }
  EXPECT_FALSE(parse_detokenize_request(R"({"tokens":[1,2,3]})", 2).tokens);
}

void expect_error(Endpoint ep, const std::string& body, const std::string& param, const std::string& words) {
  auto r = parse_request(ep, body);
  ASSERT_FALSE(r.request) << body;
  EXPECT_EQ(r.error.status, 400) << body;
  EXPECT_EQ(r.error.param, param) << body << ": " << r.error.message;
  EXPECT_NE(r.error.message.find(words), std::string::npos) << body << ": " << r.error.message;
}

TEST(OpenAiRequest, MalformedBodiesAreErrorsNamingTheField) {
  expect_error(Endpoint::Chat, "{", "", "not valid JSON");
  expect_error(Endpoint::Chat, "[1]", "", "must be a JSON object");
  expect_error(Endpoint::Chat, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", "",
               "not valid JSON (or not UTF-8)");
  expect_error(Endpoint::Chat, R"({})", "messages", "required");
  expect_error(Endpoint::Chat, R"({"messages":"hi"})", "messages", "must be an array");
  expect_error(Endpoint::Chat, R"({"messages":[]})", "messages", "at least one");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"robot","content":"x"}]})", "messages[0].role", "robot");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
               "messages[0].content[0]", "text");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature",
               "number");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"temperature":9})", "temperature",
               "must be in [0");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", "max_tokens",
               "integer");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":-3})", "max_tokens", "[0, ");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"n":2})", "n", "[1, 1]");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream", "boolean");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs",
               "logprobs");
  expect_error(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop", "string");
  expect_error(Endpoint::Completion, R"({"prompt":["a","b"],"stream":true})", "prompt", "one prompt");
  expect_error(Endpoint::Completion, R"({"prompt":["a",2]})", "prompt[1]", "string or an array of token ids");
  expect_error(Endpoint::Completion, R"({"prompt":[[1],[]]})", "prompt[1]", "empty");
  expect_error(Endpoint::Completion, R"({"prompt":[]})", "prompt", "empty");
  std::string prompts = R"({"prompt":[)";
  for (int i = 0; i < 65; ++i) prompts += (i ? ",\"p\"" : "\"p\"");
  expect_error(Endpoint::Completion, prompts + "]}", "prompt", "at most 64 prompts");
  expect_error(Endpoint::Completion, R"({"prompt":[-1]})", "prompt", "non-negative");
  expect_error(Endpoint::Completion, R"({"prompt":"x","logprobs":true})", "logprobs", "integer");
  std::string many = R"({"prompt":"x","stop":[)";
  for (int i = 0; i < 10000; ++i) many += (i ? ",\"s" : "\"s") + std::to_string(i) + "\"";
  expect_error(Endpoint::Completion, many + "]}", "stop", "at most 16");
}

TEST(OpenAiRequest, ErrorJsonIsOpenAisShapeAndSurvivesBadBytes) {
  ApiError e;
  e.status = 401;
  e.message = "bad \xff key";
  e.type = "authentication_error";
  e.code = "invalid_api_key";
  const std::string j = error_json(e);
  EXPECT_NE(j.find(R"("type":"authentication_error")"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("code":"invalid_api_key")"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("param":null)"), std::string::npos) << j;
}

TEST(OpenAiRequest, Utf8PrefixHoldsBackASplitCharacter) {
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xc3"), 1u);  // é's first byte
  EXPECT_EQ(complete_utf8_prefix("a\xc3\xa9"), 3u);
  EXPECT_EQ(complete_utf8_prefix("\xe2\x82"), 0u);  // two of €'s three bytes
  EXPECT_EQ(complete_utf8_prefix("\xe2\x82\xac"), 3u);
  EXPECT_EQ(complete_utf8_prefix("x\xf0\x9f\x98"), 1u);  // three of an emoji's four
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
}

}  // namespace
}  // namespace pocketlm::server
