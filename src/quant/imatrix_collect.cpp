#include "quant/imatrix_collect.h"

#include <algorithm>
#include <cmath>

#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace pocketlm {

ImatrixCollector::ImatrixCollector(ImatrixCollectOptions opts) : opts_(opts) {}

bool ImatrixCollector::wants(std::string_view name, bool process_output) {
  return name.starts_with("blk.") || (process_output && name == "output.weight");
}

void ImatrixCollector::observe(const GgufTensor& w, int64_t row_begin, int64_t, const float* x, int64_t n_tokens) {
  // A weight split over several calls sees the same input each time: count it once.
  if (row_begin != 0 || n_tokens < opts_.min_tokens || !problem_.empty()) return;
  auto [it, inserted] = index_.try_emplace(w.name, -1);
  if (inserted && wants(w.name, opts_.process_output)) {
    it->second = static_cast<int64_t>(accs_.size());
    Acc a;
    a.name = w.name;
    a.n_cols = w.ne[0];
    a.sums.assign(static_cast<size_t>(w.ne[0]), 0.0);
    accs_.push_back(std::move(a));
  }
  if (it->second < 0) return;
  Acc& a = accs_[static_cast<size_t>(it->second)];
  if (w.ne[0] != a.n_cols) {
    problem_ = "the weight " + a.name + " was seen with rows of " + std::to_string(a.n_cols) + " and of " +
               std::to_string(w.ne[0]) + " values";
    return;
  }
  const int64_t k = a.n_cols;
  double* s = a.sums.data();
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = x + t * k;
    for (int64_t j = 0; j < k; ++j) s[j] += static_cast<double>(row[j]) * static_cast<double>(row[j]);
  }
  a.count += n_tokens;
  for (int64_t j = 0; j < k; ++j) {
    if (!std::isfinite(s[j])) {
      problem_ = "non-finite activations reach " + a.name + " (input column " + std::to_string(j) +
                 "): the model overflows on this text";
      return;
    }
  }
}

Imatrix ImatrixCollector::result(int64_t chunk_size, std::vector<std::string> datasets) const {
  Imatrix im;
  im.datasets = std::move(datasets);
  im.chunk_size = chunk_size;
  int64_t max_count = 0;
  for (const Acc& a : accs_) {
    ImatrixEntry e;
    e.name = a.name;
    e.n_cols = a.n_cols;
    e.n_mat = 1;
    e.sums.resize(a.sums.size());
    for (size_t j = 0; j < a.sums.size(); ++j) e.sums[j] = static_cast<float>(a.sums[j]);
    e.counts = {static_cast<float>(a.count)};
    max_count = std::max(max_count, a.count);
    im.entries.push_back(std::move(e));
  }
  std::sort(im.entries.begin(), im.entries.end(),
            [](const ImatrixEntry& a, const ImatrixEntry& b) { return a.name < b.name; });
  im.chunk_count = chunk_size > 0 ? max_count / chunk_size : 0;
  return im;
}

Expected<std::vector<std::vector<int32_t>>> imatrix_text_chunks(const Tokenizer& tok, std::span<const int32_t> ids,
                                                                int64_t n_ctx, int64_t max_chunks,
                                                                const std::string& text_name) {
  if (n_ctx < 1)
    return Error("chunks of " + std::to_string(n_ctx) + " tokens: a chunk needs at least one token").about("n_ctx");
  const auto n_tokens = static_cast<int64_t>(ids.size());
  if (n_tokens < n_ctx)
    return Error(text_name + ": the text is " + std::to_string(n_tokens) + " tokens, shorter than one chunk of " +
                 std::to_string(n_ctx) + " tokens; give a longer text or smaller chunks")
        .about("n_ctx");
  int64_t n_chunk = n_tokens / n_ctx;
  if (max_chunks >= 0) n_chunk = std::min(n_chunk, max_chunks);
  if (n_chunk < 1)
    return Error(std::to_string(max_chunks) + " chunks asked for: nothing to collect").about("max_chunks");
  const int32_t bos = tok.add_bos() ? tok.bos() : -1;
  std::vector<std::vector<int32_t>> chunks(static_cast<size_t>(n_chunk));
  for (int64_t c = 0; c < n_chunk; ++c) {
    auto& ch = chunks[static_cast<size_t>(c)];
    ch.assign(ids.begin() + c * n_ctx, ids.begin() + (c + 1) * n_ctx);
    if (bos >= 0) ch[0] = bos;
  }
  return chunks;
}

Expected<PromptSequences> imatrix_prompt_sequences(const Tokenizer& tok, const std::string& chat_template,
                                                   std::span<const CalibrationPrompt> prompts, int64_t n_ctx,
                                                   int64_t max_prompts, int64_t min_tokens) {
  PromptSequences out;
  for (const CalibrationPrompt& p : prompts) {
    if (max_prompts >= 0 && static_cast<int64_t>(out.sequences.size()) >= max_prompts) break;
    auto text = render_prompt(chat_template, p.turn);
    if (!text) return text.error().with_context(p.source);
    std::vector<int32_t> ids = tok.encode(*text, /*add_special=*/true, /*parse_special=*/true);
    if (static_cast<int64_t>(ids.size()) > n_ctx) {
      ids.resize(static_cast<size_t>(n_ctx));
      ++out.truncated;
    }
    if (static_cast<int64_t>(ids.size()) < min_tokens) {
      ++out.too_short;
      continue;
    }
    out.sequences.push_back(std::move(ids));
  }
  if (out.sequences.empty())
    return Error("no calibration example gives at least " + std::to_string(min_tokens) + " tokens to collect over");
  return out;
}

Status for_each_calibration_piece(Session& session, std::span<const std::vector<int32_t>> sequences, int64_t n_batch,
                                  const std::function<Status(std::span<const int32_t> tokens)>& piece) {
  const int64_t step = std::max<int64_t>(1, n_batch);
  for (const std::vector<int32_t>& seq : sequences) {
    session.reset();
    const auto n = static_cast<int64_t>(seq.size());
    const int64_t pieces = (n + step - 1) / step;
    for (int64_t i = 0; i < pieces; ++i) {
      const int64_t b = n * i / pieces, e = n * (i + 1) / pieces;
      PLM_CHECK(piece(std::span<const int32_t>(seq).subspan(static_cast<size_t>(b), static_cast<size_t>(e - b))));
    }
  }
  return Status::Ok();
}

Status collect_imatrix(Session& session, std::span<const std::vector<int32_t>> sequences, int64_t n_batch,
                       bool all_logits, ImatrixCollector& collector, const std::function<void(int64_t)>& tokens_done) {
  const ScopedMatmulObserver watch(collector);
  return for_each_calibration_piece(session, sequences, n_batch, [&](std::span<const int32_t> tokens) -> Status {
    auto r = session.eval(tokens, all_logits);
    if (!r) return r.error();
    if (!collector.problem().empty()) return Error(collector.problem());
    if (tokens_done) tokens_done(static_cast<int64_t>(tokens.size()));
    return Status::Ok();
  });
}

}  // namespace pocketlm
