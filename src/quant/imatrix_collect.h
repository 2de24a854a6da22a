#pragma once
// Collecting an importance matrix (`pocketlm imatrix`): the model runs over calibration tokens while an
// ImatrixCollector watches every matmul's f32 input (kernels/matmul.h's MatmulObserver) and adds, per
// weight and input column, the squares of the activations, and per weight the number of tokens.
//
// What is recorded follows llama.cpp's llama-imatrix, so the two tools' files agree entry by entry:
//   - weights named "blk.*" (every layer matmul), and "output.weight" only with process_output (a model
//     whose lm_head is tied to token_embd.weight has no output entry, in either tool);
//   - a product over fewer than `min_tokens` (16) input rows is ignored: such calls are single-token
//     decoding, not calibration;
//   - a non-finite activation stops the run with an error naming the weight.
// Sums are accumulated in double (llama-imatrix uses float) and stored as f32.
//
// Calibration sequences come from a text (imatrix_text_chunks: llama-imatrix's chunking) or from prompts
// (imatrix_prompt_sequences: e.g. a task file's examples, each rendered through the model's chat template).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernels/matmul.h"
#include "quant/imatrix.h"
#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace pocketlm {

class Session;
class Tokenizer;

struct ImatrixCollectOptions {
  bool process_output = false;  // also record output.weight (llama-imatrix --process-output)
  int64_t min_tokens = 16;      // ignore products over fewer rows (llama-imatrix's rule)
};

class ImatrixCollector final : public MatmulObserver {
 public:
  explicit ImatrixCollector(ImatrixCollectOptions opts = {});

  void observe(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens) override;

  // Whether a weight of this name is recorded.
  static bool wants(std::string_view name, bool process_output);

  // The first problem seen (a non-finite activation); empty while all is well.
  const std::string& problem() const { return problem_; }
  size_t n_entries() const { return accs_.size(); }

  // The collected sums and counts as an Imatrix (entries sorted by name). chunk_count is the largest count
  // divided by chunk_size, as llama-imatrix computes it.
  Imatrix result(int64_t chunk_size, std::vector<std::string> datasets) const;

 private:
  struct Acc {
    std::string name;
    int64_t n_cols = 0;
    std::vector<double> sums;
    int64_t count = 0;
  };
  ImatrixCollectOptions opts_;
  // By name, not by tensor address: a forward pass may hand the kernel a temporary view of a weight.
  std::unordered_map<std::string, int64_t> index_;  // -1: a weight that is not recorded
  std::vector<Acc> accs_;
  std::string problem_;
};

// llama-imatrix's text chunking: the text's tokens (BOS added when the model adds one) cut into chunks of
// n_ctx tokens, at most max_chunks of them (< 0: all); the first token of each chunk is replaced by BOS when
// the model adds BOS. The tail shorter than a chunk is not used. An error when not even one chunk fits.
Expected<std::vector<std::vector<int32_t>>> imatrix_text_chunks(const Tokenizer& tok, std::span<const int32_t> ids,
                                                                int64_t n_ctx, int64_t max_chunks,
                                                                const std::string& text_name);

// Prompt calibration ("calibration data from the product workload", e.g. eval's task examples as
// task_calibration_prompts gives them): each turn rendered by render_prompt (tokenizer/chat_template.h) with
// `chat_template` ("" for models without one) and tokenized with special tokens parsed. Each prompt is one
// sequence, cut to n_ctx tokens (`truncated` counts those cut); at most max_prompts (< 0: all).
struct CalibrationPrompt {
  PromptTurn turn;
  std::string source;  // where it comes from ("FILE:LINE"), for errors
};
struct PromptSequences {
  std::vector<std::vector<int32_t>> sequences;
  int64_t truncated = 0;
  int64_t too_short = 0;  // prompts shorter than the collector's min_tokens (they add nothing)
};
Expected<PromptSequences> imatrix_prompt_sequences(const Tokenizer& tok, const std::string& chat_template,
                                                   std::span<const CalibrationPrompt> prompts, int64_t n_ctx,
                                                   int64_t max_prompts, int64_t min_tokens);

// The calibration pass both collectors (imatrix, calib_stats) share: each sequence from an empty cache, in
// near-equal pieces of at most n_batch tokens (so no piece falls under a collector's minimum); `piece` gets
// each piece's tokens and evaluates them; its error stops the pass.
Status for_each_calibration_piece(Session& session, std::span<const std::vector<int32_t>> sequences, int64_t n_batch,
                                  const std::function<Status(std::span<const int32_t> tokens)>& piece);

// Runs each sequence through `session` from an empty cache, in forward calls of at most n_batch tokens (a
// sequence longer than n_batch is cut into near-equal pieces, so no piece falls under the collector's
// minimum), with `collector` observing every product. all_logits is needed for output.weight to see every
// token. `tokens_done` reports progress. A non-finite activation is an error naming the weight.
Status collect_imatrix(Session& session, std::span<const std::vector<int32_t>> sequences, int64_t n_batch,
                       bool all_logits, ImatrixCollector& collector,
                       const std::function<void(int64_t)>& tokens_done = {});

}  // namespace pocketlm
