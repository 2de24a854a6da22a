#include "eval/task_runner.h"

#include <algorithm>

#include "eval/metrics_bleu.h"
#include "eval/metrics_chrf.h"
#include "eval/metrics_rouge.h"
#include "runtime/generator.h"
#include "tokenizer/chat_template.h"
#include "util/stats.h"

namespace pocketlm {

std::string language_name(std::string_view code) {
  static const std::pair<std::string_view, std::string_view> kNames[] = {
      {"en", "English"},    {"fr", "French"}, {"de", "German"},  {"es", "Spanish"}, {"it", "Italian"},
      {"pt", "Portuguese"}, {"nl", "Dutch"},  {"ru", "Russian"}, {"zh", "Chinese"}, {"ja", "Japanese"},
      {"ko", "Korean"},     {"ar", "Arabic"}, {"pl", "Polish"},  {"cs", "Czech"},   {"tr", "Turkish"}};
  for (const auto& [c, n] : kNames)
    if (c == code) return std::string(n);
  return std::string(code);
}

namespace {

std::string with_newline(const std::string& s) { return s.empty() || s.back() == '\n' ? s : s + "\n"; }

}  // namespace

TaskPrompt task_prompt(const TaskExample& ex) {
  TaskPrompt p;
  switch (ex.kind) {
    case TaskKind::Summarize:
      p.user =
          "Summarize the following dialogue in one or two sentences. Refer to the speakers as #Person1# and "
          "#Person2#.\n\n" +
          ex.input;
      p.completion = "Dialogue:\n" + with_newline(ex.input) +
                     "\nSummary of the dialogue in one or two sentences, naming the speakers #Person1# and #Person2#:";
      p.stop_text = "\n\n";
      p.max_tokens = 128;
      break;
    case TaskKind::Translate:
      p.user = "Translate the following text from " + language_name(ex.source_lang) + " to " +
               language_name(ex.target_lang) + ". Reply with the translation only.\n\n" + ex.input;
      p.completion = language_name(ex.source_lang) + ": " + ex.input + "\n" + language_name(ex.target_lang) + ":";
      p.stop_text = "\n";
      p.max_tokens = 256;
      break;
    case TaskKind::CommitMessage:
      p.user =
          "Here is a code change (a diff):\n\n" + ex.input +
          "\nWrite a one-line git commit message that describes this change. Reply with the message only, no code.";
      p.completion = "Diff:\n" + with_newline(ex.input) + "\nCommit message (one line):";
      p.stop_text = "\n";
      p.max_tokens = 48;
      break;
  }
  return p;
}

PromptTurn task_turn(const TaskExample& ex, bool with_answer) {
  TaskPrompt p = task_prompt(ex);
  PromptTurn t{.user = std::move(p.user), .completion = std::move(p.completion)};
  if (with_answer) t.answer = ex.references.empty() ? std::string() : ex.references.front();
  return t;
}

std::vector<std::string> task_metric_names(TaskKind kind) {
  switch (kind) {
    case TaskKind::Summarize: return {"rougeL", "rouge1", "rouge2"};
    case TaskKind::Translate: return {"chrf", "bleu"};
    case TaskKind::CommitMessage: return {"nngen_bleu", "rougeL"};
  }
  return {};
}

TaskScores score_output(const TaskExample& ex, std::string_view output) {
  switch (ex.kind) {
    case TaskKind::Summarize: {
      const RougeScores r = rouge_multi(ex.references, output);
      return {{"rougeL", 100 * r.rougeL.fmeasure},
              {"rouge1", 100 * r.rouge1.fmeasure},
              {"rouge2", 100 * r.rouge2.fmeasure}};
    }
    case TaskKind::Translate:
      return {{"chrf", sentence_chrf(output, ex.references)}, {"bleu", sentence_bleu(output, ex.references)}};
    case TaskKind::CommitMessage:
      return {{"nngen_bleu", nngen_bleu(output, ex.references)},
              {"rougeL", 100 * rouge_multi(ex.references, output).rougeL.fmeasure}};
  }
  return {};
}

TaskRunner::TaskRunner(const Model& model, Session& session, std::string chat_template)
    : model_(model), session_(session), template_(std::move(chat_template)) {}

Expected<std::vector<int32_t>> TaskRunner::prompt_tokens(const TaskExample& ex) const {
  PLM_TRY(std::string text, render_prompt(template_, task_turn(ex, /*with_answer=*/false)));
  return model_.tokenizer().encode(text, true, true);
}

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_blank(s[b])) ++b;
  while (e > b && is_blank(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

bool is_fence_line(std::string_view line) {
  const std::string t = trim(line);
  return t.size() >= 3 && t.compare(0, 3, "```") == 0 && t.find(' ') == std::string::npos;
}

// Where the answer starts in the output so far: past leading blanks and the complete lines that come before
// an answer rather than being one: code fences ("```", "```diff") and lead-ins ("Here is the summary:").
size_t answer_start(const std::string& s) {
  size_t b = 0;
  for (;;) {
    while (b < s.size() && is_blank(s[b])) ++b;
    const size_t nl = s.find('\n', b);
    if (nl == std::string::npos) return b;  // the line is not complete yet
    const std::string line = trim(std::string_view(s).substr(b, nl - b));
    if (!is_fence_line(line) && line.back() != ':') return b;
    b = nl + 1;
  }
}

// A one-line answer wrapped in quotes or backticks ("`Fix the build`") without them.
std::string unwrap(std::string s) {
  while (s.size() >= 2 && (s.front() == '"' || s.front() == '`' || s.front() == '\'') && s.back() == s.front())
    s = trim(std::string_view(s).substr(1, s.size() - 2));
  return s;
}

}  // namespace

TaskAnswer extract_answer(const std::string& decoded, const std::string& stop) {
  TaskAnswer a;
  std::string out = decoded.substr(answer_start(decoded));
  const size_t pos = stop.empty() ? std::string::npos : out.find(stop);
  if (pos != std::string::npos) {
    out.resize(pos);
    a.complete = true;
  }
  a.text = unwrap(trim(out));
  return a;
}

int translation_token_cap(int64_t source_tokens) {
  return static_cast<int>(std::min<int64_t>(3 * source_tokens + 32, 1 << 20));
}

Expected<TaskOutput> TaskRunner::run(const TaskExample& ex, int max_tokens) {
  const TaskPrompt p = task_prompt(ex);
  const Tokenizer& tok = model_.tokenizer();
  int limit = max_tokens > 0 ? max_tokens : p.max_tokens;
  if (max_tokens <= 0 && ex.kind == TaskKind::Translate) {
    const size_t source_tokens = tok.encode(ex.input, false, false).size();
    limit = std::min(limit, translation_token_cap(static_cast<int64_t>(source_tokens)));
  }
  PLM_TRY(std::vector<int32_t> ids, prompt_tokens(ex));
  const std::string& stop = template_.empty() ? p.completion_stop : p.stop_text;
  TaskOutput r;
  r.prompt_tokens = static_cast<int64_t>(ids.size());
  const double t0 = now_seconds();
  session_.reset();
  Sampler greedy(SamplerParams{.temp = 0.0f, .seed = 0});
  GenerateOptions opts;
  opts.max_tokens = limit;
  opts.draft = draft_params_;
  // The task's own stop rule: the stop text after the answer's start (extract_answer), checked per token.
  std::vector<int32_t> gen;
  PLM_TRY(GenerateResult res,
          Generator(session_, tok, draft_).generate(ids, greedy, opts, [&](int32_t t, std::string_view) {
            if (t < 0) return true;
            gen.push_back(t);
            return !extract_answer(tok.decode(gen), stop).complete;
          }));
  const SpeculativeStats& sp = res.stats.speculative;
  draft_stats_.rounds += sp.rounds;
  draft_stats_.drafted += sp.drafted;
  draft_stats_.accepted += sp.accepted;
  draft_stats_.draft_seconds += sp.draft_seconds;
  draft_stats_.verify_seconds += sp.verify_seconds;
  switch (res.stats.stop) {
    case StopReason::EndOfGeneration: r.stop = "eog"; break;
    case StopReason::Callback: r.stop = "text"; break;
    case StopReason::ContextFull: r.stop = "context"; break;
    case StopReason::MaxTokens:
    case StopReason::StopString: r.stop = "max_tokens"; break;
  }
  r.output = extract_answer(tok.decode(gen), stop).text;
  r.tokens = static_cast<int64_t>(gen.size());
  r.seconds = now_seconds() - t0;
  return r;
}

}  // namespace pocketlm
