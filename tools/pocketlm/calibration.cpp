#include "calibration.h"

#include <cstdio>

#include "common.h"
#include "eval/task_runner.h"
#include "eval/task_set.h"
#include "quant/imatrix_collect.h"
#include "tokenizer/chat_template.h"

namespace pocketlm::cli {

Expected<std::string> calibration_template(const Model& model, const std::string& override_template,
                                           const std::string& model_path, bool no_answers) {
  std::string tmpl = override_template;
  if (tmpl.empty()) {
    auto t = model.gguf().get_string_or("tokenizer.chat_template", "");
    if (t) tmpl = *t;
  }
  if (tmpl.empty()) {
    std::fprintf(stderr, "note: %s has no chat template; examples are completion-style text (prompt%s)\n",
                 model_path.c_str(), no_answers ? "" : ", space, answer, newline");
    return tmpl;
  }
  auto probe = apply_chat_template(tmpl, {{"user", "x"}}, true);
  if (!probe) return probe.error();
  return tmpl;
}

Expected<CalibrationInput> calibration_input(const Model& model, const std::string& model_path,
                                             const std::string& text_path, const std::vector<std::string>& tasks,
                                             int64_t n_ctx, int64_t max_chunks, int64_t min_tokens) {
  const Tokenizer& tok = model.tokenizer();
  CalibrationInput out;
  if (!text_path.empty()) {
    std::string text;
    if (!read_text_file(text_path, text)) return Error(text_path + ": cannot read the calibration text");
    if (text.empty()) return Error(text_path + ": the calibration text is empty");
    if (tok.add_eos())
      return Error(model_path +
                   ": the tokenizer appends EOS to every text (tokenizer.ggml.add_eos_token); chunked "
                   "calibration over a text is not defined for it");
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
    PLM_TRY(out.sequences, imatrix_text_chunks(tok, ids, n_ctx, max_chunks, text_path));
    out.name =
        text_path + ": " + std::to_string(out.sequences.size()) + " chunks of " + std::to_string(n_ctx) + " tokens";
    return out;
  }
  PLM_TRY(TaskSet set, load_task_files(tasks));
  for (const auto& p : set.problems) std::fprintf(stderr, "warning: %s\n", p.c_str());
  if (set.examples.empty()) return Error("no usable examples in the --tasks file(s)");
  PLM_TRY(std::string tmpl, calibration_template(model, "", model_path, false));
  std::vector<CalibrationPrompt> prompts;
  for (const TaskExample& ex : set.examples)
    prompts.push_back({task_turn(ex, true), ex.file + ":" + std::to_string(ex.line)});
  PLM_TRY(PromptSequences r, imatrix_prompt_sequences(tok, tmpl, prompts, n_ctx, max_chunks, min_tokens));
  out.sequences = std::move(r.sequences);
  std::string files;
  for (const std::string& t : tasks) files += (files.empty() ? "" : ", ") + t;
  out.name = files + ": " + std::to_string(out.sequences.size()) + " examples";
  return out;
}

}  // namespace pocketlm::cli
