#pragma once
// Perplexity and KL divergence over a text, chunked the way llama-perplexity chunks it by default:
//   - the whole text is tokenized once, with BOS when the model adds one (no special-token parsing);
//   - chunk k is tokens [k·n_ctx, (k+1)·n_ctx); each is evaluated from an empty KV cache, with its first
//     token replaced by BOS when the model adds one;
//   - only the second half is scored: the logits at positions n_ctx/2 .. n_ctx-2 predict the tokens after
//     them (n_ctx - 1 - n_ctx/2 predictions per chunk), so every scored token has at least n_ctx/2 of context;
//   - PPL = exp(mean NLL) over all scored tokens, ± PPL × the standard error of the mean NLL.
// The first half of a chunk is evaluated without computing its logits (the output head runs only where a
// score is needed). See docs/evaluation.md.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "eval/kld_stats.h"
#include "eval/logits_file.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pocketlm::eval {

struct ChunkPlan {
  int64_t n_ctx = 0;
  int64_t n_chunk = 0;
  int32_t bos = -1;  // >= 0: replaces each chunk's first token
  int64_t first() const { return n_ctx / 2; }
  int64_t scored() const { return scored_positions(n_ctx); }
};

// The text's ids as llama-perplexity makes them (encode with add_special, without parse_special). An error
// when the tokenizer would also append EOS (llama-perplexity refuses such models too).
Expected<std::vector<int32_t>> tokenize_for_perplexity(const Tokenizer& tok, std::string_view text);

// Chunks of n_ctx over n_tokens, at most max_chunks (< 0: all). An error naming `text_name` when the text
// is shorter than one chunk, or n_ctx is below 4.
Expected<ChunkPlan> plan_chunks(const Tokenizer& tok, int64_t n_tokens, int64_t n_ctx, int64_t max_chunks,
                                const std::string& text_name);

// Called after each eval call with the number of tokens it evaluated (for a progress line).
using TokensDone = std::function<void(int64_t n_tokens)>;

struct PerplexityResult {
  int64_t n_ctx = 0, n_chunk = 0, count = 0;  // count: scored tokens
  double nll_sum = 0, nll2_sum = 0;
  std::vector<double> running_ppl;  // after each chunk
  double ppl() const;
  double ppl_error() const;  // PPL × standard error of the mean NLL; 0 when undefined
};

// Scores every chunk of `tokens` (the session's context must hold n_ctx tokens). `n_batch` bounds the
// tokens per eval call. With `save`, each scored position's quantized log-prob row is written to it.
// `chunk_done` sees the result so far after each chunk.
Expected<PerplexityResult> perplexity(Session& session, std::span<const int32_t> tokens, const ChunkPlan& plan,
                                      int64_t n_batch, LogitsWriter* save, const TokensDone& tokens_done,
                                      const std::function<void(const PerplexityResult&)>& chunk_done);

struct KldRun {
  KldAccumulator acc;
  std::vector<KldRunning> per_chunk;
};

// Scores the first plan.n_chunk chunks of the base file's tokens against its rows.
Expected<KldRun> kl_divergence(Session& session, const LogitsReader& base, const ChunkPlan& plan, int64_t n_batch,
                               const TokensDone& tokens_done, const std::function<void(const KldRun&)>& chunk_done);

}  // namespace pocketlm::eval
