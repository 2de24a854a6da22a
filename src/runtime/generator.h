#pragma once
// The one generate loop every client runs (pocketlm run and chat, eval's tasks, the C API, later the server):
// prompt tokens appended to a Session, then sample → stream → evaluate until a stop rule fires. The client
// sees each token through a callback (the text it adds, with stop strings held back until they are ruled
// out), may stop or cancel from it, and gets the timings and memory in a GenerateStats.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pocketlm {

enum class StopReason {
  EndOfGeneration,  // the model produced an end-of-generation token (not part of the output)
  MaxTokens,        // GenerateOptions::max_tokens were generated
  StopString,       // a stop string appeared (the output ends before it)
  ContextFull,      // the context holds n_ctx tokens
  Callback,         // the token callback returned false (a client's own stop rule, or cancellation)
};
const char* stop_reason_name(StopReason r);  // "eog" | "max_tokens" | "stop_string" | "context" | "callback"

struct GenerateOptions {
  int64_t max_tokens = -1;        // < 0: until another rule stops
  bool ignore_eos = false;        // keep generating past end-of-generation tokens (they are then output)
  std::vector<std::string> stop;  // stop strings, matched on the generated text
};

// Speed and memory of one generate() call.
struct GenerateStats {
  int64_t prompt_tokens = 0;  // tokens evaluated before the first sample
  double prompt_seconds = 0;
  int64_t tokens = 0;         // generated (and output) tokens
  int64_t decode_steps = 0;   // single-token forward passes, timed in decode_seconds
  double decode_seconds = 0;  // from the first sample to the end
  size_t kv_bytes = 0;        // KV blocks the session holds at the end
  size_t peak_rss_bytes = 0;  // the process's resident-memory high-water mark at the end
  StopReason stop = StopReason::MaxTokens;
  double prompt_tokens_per_second() const {
    return prompt_seconds > 0 ? static_cast<double>(prompt_tokens) / prompt_seconds : 0;
  }
  double tokens_per_second() const {
    return decode_seconds > 0 ? static_cast<double>(decode_steps) / decode_seconds : 0;
  }
};

// Called once per generated token with the text it releases (possibly empty while a stop string may be
// forming, possibly longer when held-back text turns out not to be one), and, when text is still held back
// as generation ends, once more with token -1 and that text. Return false to stop (the return value of the
// last call is ignored).
using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated tokens (an end-of-generation token not included)
  std::string text;             // the text streamed, cut before a stop string
  GenerateStats stats;
};

class Generator {
 public:
  Generator(Session& session, const Tokenizer& tokenizer) : session_(session), tok_(tokenizer) {}
  // Appends `tokens` to the session (the prompt, or the part of it the cache does not hold yet: at least one
  // token), then generates. An error when they do not fit the context or a forward pass fails; the tokens
  // generated before a failure are lost with it.
  Expected<GenerateResult> generate(std::span<const int32_t> tokens, Sampler& sampler, const GenerateOptions& opts,
                                    const TokenCallback& on_token = {});

 private:
  Session& session_;
  const Tokenizer& tok_;
};

}  // namespace pocketlm
