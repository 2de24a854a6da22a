#pragma once
// Calibration data for the commands that run a model over it (imatrix, quantize --method): a plain text cut
// into llama-imatrix's chunks, or task files whose examples are rendered through the model's chat template.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "util/error.h"

namespace pocketlm::cli {

// The model's chat template for task calibration (`override` when given: a name or Jinja source); "" for a
// model without one (examples then become completion-style text, which a note on stderr says).
Expected<std::string> calibration_template(const Model& model, const std::string& override_template,
                                           const std::string& model_path, bool no_answers);

struct CalibrationInput {
  std::vector<std::vector<int32_t>> sequences;
  std::string name;  // "wiki.train.raw: 8 chunks of 512 tokens" / "tasks.jsonl: 40 examples"
};

// `text_path` (non-empty) or `tasks`: at most max_chunks chunks (examples) of n_ctx tokens (< 0: all).
// Errors: an empty text, a text shorter than one chunk, task files with no usable example.
Expected<CalibrationInput> calibration_input(const Model& model, const std::string& model_path,
                                             const std::string& text_path, const std::vector<std::string>& tasks,
                                             int64_t n_ctx, int64_t max_chunks, int64_t min_tokens);

}  // namespace pocketlm::cli
