#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "eval/log_probs.h"

namespace pocketlm::eval {
namespace {

// Evaluates chunk `c` from an empty cache and calls score(i, logits, next) for each scored position i in
// [0, plan.scored()): logits of position first()+i and the token after it.
using ScoreFn = std::function<Status(int64_t i, std::span<const float> logits, int32_t next)>;

Status eval_chunk(Session& session, std::span<const int32_t> tokens, const ChunkPlan& plan, int64_t c, int64_t n_batch,
                  std::vector<int32_t>& buf, const TokensDone& tokens_done, const ScoreFn& score) {
  const auto n_ctx = static_cast<size_t>(plan.n_ctx);
  const auto first = static_cast<size_t>(plan.first());
  buf.assign(tokens.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(c) * n_ctx),
             tokens.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(c + 1) * n_ctx));
  if (plan.bos >= 0) buf[0] = plan.bos;
  session.reset();
  const auto step = static_cast<size_t>(std::max<int64_t>(1, n_batch));
  size_t pos = 0;
  while (pos < n_ctx) {
    // Batches end at multiples of n_batch and at `first`, where the logits start to matter.
    size_t end = std::min(n_ctx, (pos / step + 1) * step);
    if (pos < first) end = std::min(end, first);
    const bool want = pos >= first;
    PLM_TRY(auto logits, session.eval(std::span<const int32_t>(buf).subspan(pos, end - pos), want));
    if (tokens_done) tokens_done(static_cast<int64_t>(end - pos));
    if (want) {
      const size_t n_vocab = logits.size() / (end - pos);
      for (size_t p = pos; p < end && p + 1 < n_ctx; ++p) {
        const int32_t next = tokens[static_cast<size_t>(c) * n_ctx + p + 1];
        PLM_CHECK(score(static_cast<int64_t>(p - first), logits.subspan((p - pos) * n_vocab, n_vocab), next));
      }
    }
    pos = end;
  }
  return Status::Ok();
}

}  // namespace

Expected<std::vector<int32_t>> tokenize_for_perplexity(const Tokenizer& tok, std::string_view text) {
  if (tok.add_eos())
    return Error(
        "the model's tokenizer appends EOS to every text (tokenizer.ggml.add_eos_token); perplexity "
        "over chunks is not defined for it (llama-perplexity refuses such models too)");
  return tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
}

Expected<ChunkPlan> plan_chunks(const Tokenizer& tok, int64_t n_tokens, int64_t n_ctx, int64_t max_chunks,
                                const std::string& text_name) {
  if (n_ctx < 4)
    return Error("chunks of " + std::to_string(n_ctx) + " tokens are too small: perplexity needs at least 4")
        .about("n_ctx");
  if (n_tokens < n_ctx)
    return Error(text_name + ": the text is " + std::to_string(n_tokens) + " tokens, shorter than one chunk of " +
                 std::to_string(n_ctx) + " tokens; give a longer text or smaller chunks")
        .about("n_ctx");
  ChunkPlan p;
  p.n_ctx = n_ctx;
  p.n_chunk = n_tokens / n_ctx;
  if (max_chunks >= 0) p.n_chunk = std::min(p.n_chunk, max_chunks);
  if (p.n_chunk < 1)
    return Error(std::to_string(max_chunks) + " chunks asked for: nothing to evaluate").about("max_chunks");
  p.bos = tok.add_bos() ? tok.bos() : -1;
  return p;
}

double PerplexityResult::ppl() const { return count > 0 ? std::exp(nll_sum / static_cast<double>(count)) : 0.0; }

double PerplexityResult::ppl_error() const {
  if (count < 2) return 0.0;
  const auto n = static_cast<double>(count);
  const double mean = nll_sum / n;
  const double var = nll2_sum / n - mean * mean;
  return var > 0 ? std::sqrt(var / (n - 1)) * ppl() : 0.0;
}

Expected<PerplexityResult> perplexity(Session& session, std::span<const int32_t> tokens, const ChunkPlan& plan,
                                      int64_t n_batch, LogitsWriter* save, const TokensDone& tokens_done,
                                      const std::function<void(const PerplexityResult&)>& chunk_done) {
  if (static_cast<int64_t>(tokens.size()) < plan.n_chunk * plan.n_ctx)
    return Error("perplexity: fewer tokens than the plan");
  PerplexityResult r;
  r.n_ctx = plan.n_ctx;
  r.n_chunk = plan.n_chunk;
  std::vector<int32_t> buf;
  std::vector<uint8_t> row;
  for (int64_t c = 0; c < plan.n_chunk; ++c) {
    // Sums per chunk first, then into the totals: the order of additions does not depend on -t.
    double nll = 0, nll2 = 0;
    const auto score = [&](int64_t, std::span<const float> logits, int32_t next) -> Status {
      double v;
      if (save != nullptr) {
        row.resize(log_prob_row_bytes(static_cast<int64_t>(logits.size())));
        v = encode_log_prob_row(logits, next, row.data());
        PLM_CHECK(save->add_row(row.data()));
      } else {
        v = token_nll(logits, next);
      }
      nll += v;
      nll2 += v * v;
      return Status::Ok();
    };
    PLM_CHECK(eval_chunk(session, tokens, plan, c, n_batch, buf, tokens_done, score));
    if (save != nullptr) PLM_CHECK(save->end_chunk());
    r.nll_sum += nll;
    r.nll2_sum += nll2;
    r.count += plan.scored();
    r.running_ppl.push_back(r.ppl());
    if (chunk_done) chunk_done(r);
  }
  return r;
}

Expected<KldRun> kl_divergence(Session& session, const LogitsReader& base, const ChunkPlan& plan, int64_t n_batch,
                               const TokensDone& tokens_done, const std::function<void(const KldRun&)>& chunk_done) {
  const LogitsFileInfo& info = base.info();
  if (plan.n_ctx != info.n_ctx || plan.n_chunk > info.n_chunk)
    return Error(base.path() + ": holds " + std::to_string(info.n_chunk) + " chunks of " + std::to_string(info.n_ctx) +
                 " tokens; asked for " + std::to_string(plan.n_chunk) + " of " + std::to_string(plan.n_ctx));
  KldRun run;
  std::vector<int32_t> buf;
  for (int64_t c = 0; c < plan.n_chunk; ++c) {
    PLM_TRY(auto rows, base.chunk(c));
    const auto score = [&](int64_t i, std::span<const float> logits, int32_t next) -> Status {
      if (static_cast<int64_t>(logits.size()) != info.n_vocab)
        return Error(base.path() + ": made with a vocabulary of " + std::to_string(info.n_vocab) +
                     " tokens; this model has " + std::to_string(logits.size()));
      run.acc.add(kl_position(logits, rows.data() + static_cast<size_t>(i) * info.row_bytes, next));
      return Status::Ok();
    };
    PLM_CHECK(eval_chunk(session, base.tokens(), plan, c, n_batch, buf, tokens_done, score));
    run.per_chunk.push_back(run.acc.running());
    if (chunk_done) chunk_done(run);
  }
  return run;
}

}  // namespace pocketlm::eval
