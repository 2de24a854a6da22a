#pragma once
// Runs one task example through a model: the prompt for its task kind rendered with the model's chat
// template, greedy decoding until a stop rule fires, and the task's metrics on the output. The prompts,
// stop rules and metrics are documented in docs/evaluation-tasks.md; change them only together with it.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eval/task_set.h"
#include "model/model.h"
#include "runtime/session.h"
#include "runtime/speculative/speculative_decoder.h"
#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace pocketlm {

// A task example as a prompt, in the two styles: `user`, the user message of a chat (rendered through the
// model's chat template: instruction-tuned models), and `completion`, the whole prompt as text to continue
// (models without a chat template: base models, stories260K), e.g. "English: …\nFrench:".
struct TaskPrompt {
  std::string user;                    // the user message
  std::string completion;              // the completion-style prompt
  std::string stop_text;               // chat style: generation stops where this appears after the answer starts
  std::string completion_stop = "\n";  // completion style: the same, one line
  int max_tokens = 0;                  // generation stops after this many tokens
};
TaskPrompt task_prompt(const TaskExample& ex);
// The example's prompt as a turn for render_prompt (tokenizer/chat_template.h); with_answer appends its first
// reference as the reply (a calibration sequence for `pocketlm imatrix --tasks`).
PromptTurn task_turn(const TaskExample& ex, bool with_answer);
std::string language_name(std::string_view code);  // "fr" -> "French"; unknown codes are returned as given

// The answer in a model's output so far: leading blanks and the complete lines before the answer (code
// fences, lead-ins ending in ':') skipped, cut before the stop text, trimmed, and unwrapped from matching
// quotes or backticks. `complete` once the stop text has appeared after the answer's start.
struct TaskAnswer {
  std::string text;
  bool complete = false;
};
TaskAnswer extract_answer(const std::string& decoded, const std::string& stop);
// The most tokens a translation may take without --max-tokens: three times the source's tokens plus 32 (stops a
// repetition loop early; every reference of the shared sets fits, in SmolLM2's and Gemma 3's tokens).
int translation_token_cap(int64_t source_tokens);

// Metric name -> score in [0, 100], in a fixed order; the first is the task's primary metric.
using TaskScores = std::vector<std::pair<std::string, double>>;
TaskScores score_output(const TaskExample& ex, std::string_view output);
std::vector<std::string> task_metric_names(TaskKind kind);

struct TaskOutput {
  std::string output;  // trimmed, cut at the stop text
  int64_t prompt_tokens = 0;
  int64_t tokens = 0;  // generated tokens (the EOG token not counted)
  double seconds = 0;  // prompt + generation
  std::string stop;    // "eog" | "text" | "max_tokens" | "context"
};

class TaskRunner {
 public:
  // chat_template: a template name or Jinja source (tokenizer/chat_template.h), or "" for the completion-style
  // prompt (models without a template: base models such as Gemma 3 270M's release, stories260K).
  TaskRunner(const Model& model, Session& session, std::string chat_template);
  // max_tokens > 0 overrides the task's maximum.
  Expected<TaskOutput> run(const TaskExample& ex, int max_tokens = 0);
  Expected<std::vector<int32_t>> prompt_tokens(const TaskExample& ex) const;
  // Generate by speculative decoding with this draft source (null: plain decoding); greedy output is the same.
  void set_draft(DraftSource* draft, const DraftParams& params) {
    draft_ = draft;
    draft_params_ = params;
  }
  const SpeculativeStats& draft_stats() const { return draft_stats_; }  // summed over run() calls

 private:
  const Model& model_;
  Session& session_;
  std::string template_;
  DraftSource* draft_ = nullptr;
  DraftParams draft_params_;
  SpeculativeStats draft_stats_;
};

}  // namespace pocketlm
