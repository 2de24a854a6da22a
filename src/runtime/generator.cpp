#include "runtime/generator.h"

#include <algorithm>

#include "runtime/stop_matcher.h"
#include "util/stats.h"

namespace pocketlm {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::EndOfGeneration: return "eog";
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::StopString: return "stop_string";
    case StopReason::ContextFull: return "context";
    case StopReason::Callback: return "callback";
  }
  return "?";
}

Expected<GenerateResult> Generator::generate(std::span<const int32_t> tokens, Sampler& sampler,
                                             const GenerateOptions& opts, const TokenCallback& on_token) {
  if (tokens.empty()) return Error("generate: no prompt tokens to evaluate (at least one is needed for logits)");
  if (session_.n_past() + static_cast<int64_t>(tokens.size()) >= session_.n_ctx())
    return Error("the prompt is " + std::to_string(session_.n_past() + static_cast<int64_t>(tokens.size())) +
                 " tokens, which does not fit the context of " + std::to_string(session_.n_ctx()) + " tokens");
  GenerateResult r;
  GenerateStats& st = r.stats;
  st.prompt_tokens = static_cast<int64_t>(tokens.size());
  const int64_t start = session_.n_past();
  const double t0 = now_seconds();
  PLM_TRY(std::span<const float> cur, session_.eval(tokens));
  if (draft_ != nullptr) PLM_CHECK(draft_->prepare(session_.tokens()));  // the draft's prefill is prompt time
  const double t1 = now_seconds();
  st.prompt_seconds = t1 - t0;

  StopMatcher matcher(opts.stop);
  st.stop = StopReason::MaxTokens;
  // Emits one sampled token: returns false when a stop rule fires (st.stop says which).
  auto emit = [&](int32_t token) {
    if (!opts.ignore_eos && tok_.is_eog(token)) {
      st.stop = StopReason::EndOfGeneration;
      return false;
    }
    sampler.accept(token);
    r.tokens.push_back(token);
    ++st.tokens;
    const bool stopped = matcher.add(tok_.token_to_piece(token));
    const std::string_view text = matcher.release(stopped);
    if (on_token && !on_token(token, text)) {
      st.stop = StopReason::Callback;
      return false;
    }
    if (stopped) {
      st.stop = StopReason::StopString;
      return false;
    }
    return !(opts.max_tokens >= 0 && st.tokens >= opts.max_tokens);
  };
  auto context_full = [&] {
    if (session_.n_past() < session_.n_ctx()) return false;
    st.stop = StopReason::ContextFull;
    return true;
  };

  if (opts.max_tokens != 0) {
    int32_t next = sampler.sample(cur);
    if (draft_ == nullptr) {
      while (emit(next) && !context_full()) {
        PLM_TRY(cur, session_.eval(std::span<const int32_t>(&next, 1)));
        ++st.decode_steps;
        next = sampler.sample(cur);
      }
    } else {
      draft_->begin(sampler.seed());
      SpeculativeDecoder decoder(session_, *draft_, opts.draft, opts.acceptance);
      std::vector<int32_t> round;
      bool going = emit(next);
      while (going && !context_full()) {
        PLM_CHECK(decoder.step(next, sampler, round));
        for (int32_t t : round) {
          ++st.decode_steps;
          if (!(going = emit(t))) break;
        }
        next = round.back();
      }
      st.speculative = decoder.stats();
      // Leave the cache as plain decoding would: a round may have evaluated tokens past the last one emitted.
      // Plain decoding has evaluated every emitted token but the last (and that one too when an
      // end-of-generation token followed it).
      const int64_t evaluated = st.tokens - (st.stop == StopReason::EndOfGeneration ? 0 : 1);
      const int64_t plain_end = start + st.prompt_tokens + std::max<int64_t>(0, evaluated);
      if (session_.n_past() > plain_end) PLM_CHECK(session_.truncate(plain_end));
    }
  }
  if (st.stop != StopReason::StopString && st.stop != StopReason::Callback) {
    const std::string_view rest = matcher.release(/*all=*/true);
    if (!rest.empty() && on_token) on_token(-1, rest);
  }
  st.decode_seconds = now_seconds() - t1;
  st.kv_bytes = session_.kv_bytes();
  st.peak_rss_bytes = peak_rss_bytes();
  r.text = matcher.take_text();
  return r;
}

}  // namespace pocketlm
