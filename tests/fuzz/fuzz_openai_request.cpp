// libFuzzer target: the OpenAI request parser (server/openai_request.h) on arbitrary bytes, as a chat, completions,
// /tokenize or /detokenize body (first byte % 4); every parse ends in a request or an ApiError, and both serialize.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/openai_request.h"
#include "server/utf8_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace pocketlm::server;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 4 == 2) {
    const TokenizeParse t = parse_tokenize_request(body);
    if (!t.request)
      (void)error_json(t.error);
    else
      (void)complete_utf8_prefix(t.request->text);
    return 0;
  }
  if (data[0] % 4 == 3) {
    const DetokenizeParse d = parse_detokenize_request(body);
    if (!d.tokens) (void)error_json(d.error);
    return 0;
  }
  const ParseResult r = parse_request(data[0] % 4 == 0 ? Endpoint::Chat : Endpoint::Completion, body);
  if (!r.request) {
    (void)error_json(r.error);
    return 0;
  }
  for (const auto& m : r.request->messages) (void)complete_utf8_prefix(m.content);
  for (const auto& p : r.request->prompts) (void)complete_utf8_prefix(p.text);
  return 0;
}
