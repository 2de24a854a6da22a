#pragma once
// The body of an OpenAI-style request (POST /v1/chat/completions, POST /v1/completions), parsed and checked:
// malformed JSON, invalid UTF-8, a known field of the wrong type or out of range, too many stop strings —
// each an ApiError with the HTTP status and the field's name, never an exception or a crash. Unknown fields
// are ignored (clients send many that do not apply). A parser of untrusted bytes: tests/fuzz/fuzz_openai_request.cpp.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_template.h"

namespace pocketlm::server {

// OpenAI's error object: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the field at fault, or ""
  std::string code;   // e.g. "context_length_exceeded", or ""
};
std::string error_json(const ApiError& e);

enum class Endpoint { Chat, Completion };

struct RequestLimits {
  size_t max_stop = 16;         // stop strings per request
  size_t max_stop_bytes = 512;  // bytes per stop string
  size_t max_messages = 4096;
  int max_top_logprobs = 20;
  size_t max_prompts = 64;  // completions: prompts in one request (a harness's batch)
};

// One completions prompt: text, or token ids given as they are (no BOS added).
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  std::vector<ChatMessage> messages;  // chat
  std::vector<PromptInput> prompts;   // completions: one or more prompts, each its own choice (index = position)
  int64_t max_tokens = -1;            // -1: until end of generation (completions' default is 16)
  float temperature = 1.0f;           // OpenAI's defaults
  float top_p = 1.0f;
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;
  std::optional<uint32_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // chat: logprobs; completions: logprobs given (0..max)
  int top_logprobs = 0;
  bool echo = false;        // completions: the prompt (and its logprobs) before the completion
  bool ignore_eos = false;  // llama.cpp's extension: end-of-generation tokens do not end the reply
};

struct ParseResult {
  std::optional<CompletionRequest> request;
  ApiError error;  // when !request
};

ParseResult parse_request(Endpoint endpoint, std::string_view body, const RequestLimits& limits = {});

// POST /tokenize (vLLM's shape, which lm-eval's remote tokenizer speaks; llama.cpp's "content" is accepted too):
// {"prompt": TEXT, "add_special_tokens": true}. Special tokens' texts in TEXT are parsed as those tokens.
struct TokenizeRequest {
  std::string text;
  bool add_special = true;  // BOS (and EOS) where the model adds them
};
struct TokenizeParse {
  std::optional<TokenizeRequest> request;
  ApiError error;
};
TokenizeParse parse_tokenize_request(std::string_view body, size_t max_text_bytes = size_t{8} << 20);

// POST /detokenize: {"tokens": [ids]}.
struct DetokenizeParse {
  std::optional<std::vector<int32_t>> tokens;
  ApiError error;
};
DetokenizeParse parse_detokenize_request(std::string_view body, size_t max_tokens = size_t{1} << 20);

}  // namespace pocketlm::server
