// libFuzzer target: the OpenAI request parser (server/openai_request.h) on arbitrary bytes, as chat (first byte
// even) or completions (odd) bodies; every parse ends in a request or an ApiError, and both serialize.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/utf8_stream.h"
#include "server/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace pocketlm::server;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const ParseResult r = parse_request(data[0] % 2 == 0 ? Endpoint::Chat : Endpoint::Completion, body);
  if (!r.request) {
    (void)error_json(r.error);
    return 0;
  }
  for (const auto& m : r.request->messages) (void)complete_utf8_prefix(m.content);
  (void)complete_utf8_prefix(r.request->prompt);
  return 0;
}
