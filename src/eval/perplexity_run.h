#pragma once
// One perplexity or KL-divergence run, whole: text → chunks → scores, optionally saving the base model's
// log-probs (a run with `save_logits`) or scoring against them (a run with `base_logits`). What
// `pocketlm perplexity` does, callable from tests, the tune loop and the bindings. Nothing is printed: the
// caller sees progress through the events and gets the figures back.
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "eval/kld_stats.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "runtime/session.h"
#include "util/error.h"

namespace pocketlm::eval {

struct PerplexityJob {
  std::string text_path;         // the text; may be empty when base_logits holds the tokens
  std::string base_logits;       // non-empty: KL divergence against this file (ours or llama.cpp's)
  std::string save_logits;       // non-empty: write the per-position log-probs here (a base run)
  std::optional<int64_t> n_ctx;  // tokens per chunk; default: the base file's, else 512
  int64_t max_chunks = -1;       // < 0: all
  int64_t n_batch = 2048;        // tokens per forward call (at most n_ctx)
  SessionOptions session;        // threads, KV types (n_ctx is set from the chunk size)
};

struct PerplexityEvents {
  std::function<void(const std::string& line)> note;  // one line of what is happening (a log line, no newline)
  std::function<void(int64_t total_tokens)> start;    // before the first chunk: the tokens it will evaluate
  TokensDone tokens_done;                             // after each forward call
  std::function<void(int64_t chunk, double running_ppl)> ppl_chunk;        // perplexity runs
  std::function<void(int64_t chunk, const KldRunning& so_far)> kld_chunk;  // KL-divergence runs
  // The temporary file the log-probs will be written to, just before it is created, and "" once it has been
  // renamed into place or could not be created (so a signal handler can remove a partial file).
  std::function<void(const std::string& temp_path)> partial_file;
};

struct PerplexityOutcome {
  std::string model, text, base_logits;
  int64_t n_ctx = 0, n_chunk = 0, n_batch = 0, scored_per_chunk = 0;
  int threads = 0;
  std::string kv_type;
  size_t text_bytes = 0, text_tokens = 0;
  double tokenize_seconds = 0, eval_seconds = 0;
  std::optional<PerplexityResult> ppl;  // perplexity runs
  std::optional<KldReport> kld;         // KL-divergence runs
  std::optional<uint64_t> saved_bytes;  // runs that saved log-probs
  size_t saved_bytes_per_position = 0;
  std::string warning;  // e.g. a context past the model's training context
  double tokens_per_second() const;
  // The JSON `pocketlm perplexity -o json` prints.
  nlohmann::json to_json() const;
};

// Runs the job on a loaded model. Errors name the file and the problem: a text shorter than one chunk, a base
// file saved over another text, with another tokenizer or another chunk size, an output path that is an input.
Expected<PerplexityOutcome> run_perplexity(const Model& model, const std::string& model_path, const PerplexityJob& job,
                                           const PerplexityEvents& events = {});

// llama-perplexity's --kl-divergence report as text (the same sections and lines).
std::string format_kld_report(const KldReport& r);
nlohmann::json kld_json(const KldReport& r);

}  // namespace pocketlm::eval
