// Task files: good lines load, bad lines are reported with FILE:LINE and skipped, the rest still loads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "eval/task_runner.h"
#include "eval/task_set.h"
#include "test_paths.h"

namespace pocketlm {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto p =
      std::filesystem::temp_directory_path() / ("pocketlm_taskset_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

TEST(EvalTaskSet, ParsesTheThreeKinds) {
  auto s = parse_task_line(R"({"id":"a","task":"summarize","input":"x","references":["r1","r2"]})");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->kind, TaskKind::Summarize);
  EXPECT_EQ(s->references.size(), 2u);
  auto t = parse_task_line(
      R"({"id":"b","task":"translate","source_lang":"en","target_lang":"de","input":"x","references":["r"]})");
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->task, "translate.en-de");
  EXPECT_EQ(t->key(), "translate.en-de/b");
  auto c = parse_task_line(R"({"id":"c","task":"commit_message","input":"x","references":["r"]})");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->kind, TaskKind::CommitMessage);
}

TEST(EvalTaskSet, BadLinesSayWhatIsWrong) {
  auto expect_error = [](const std::string& line, const std::string& needle) {
    auto r = parse_task_line(line);
    ASSERT_FALSE(r) << line;
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
  };
  expect_error(R"({"id":"a","task":"summarize","input":"x","references":["r"])", "malformed JSON");
  expect_error(R"({"id":"a","task":"summarize","references":["r"]})", "missing field \"input\"");
  expect_error(R"({"task":"summarize","input":"x","references":["r"]})", "missing field \"id\"");
  expect_error(R"({"id":"a","task":"summarize","input":"x","references":[]})", "empty reference list");
  expect_error(R"({"id":"a","task":"summarize","input":"x"})", "missing field \"references\"");
  expect_error(R"({"id":"a","task":"summarize","input":"x","references":"r"})", "list of strings");
  expect_error(R"({"id":"a","task":"summarize","input":"x","references":["r", 3]})", "references[1]");
  expect_error(R"({"id":"a","task":"poetry","input":"x","references":["r"]})", "unknown task \"poetry\"");
  expect_error(R"({"id":"a","task":"translate","input":"x","references":["r"]})", "source_lang");
  expect_error(R"([1,2])", "JSON object");
}

TEST(EvalTaskSet, FileProblemsNameTheLineAndTheRestLoads) {
  const std::string path = write_temp("mixed.jsonl", R"({"id":"1","task":"summarize","input":"a","references":["r"]})"
                                                     "\n{not json\n"
                                                     R"({"id":"3","task":"summarize","input":"c","references":[]})"
                                                     "\n\n"
                                                     R"({"id":"1","task":"summarize","input":"dup","references":["r"]})"
                                                     "\n"
                                                     R"({"id":"6","task":"summarize","input":"f","references":["r"]})"
                                                     "\n");
  auto set = load_task_files({path});
  ASSERT_TRUE(set) << set.error().message();
  ASSERT_EQ(set->examples.size(), 2u);
  EXPECT_EQ(set->examples[0].id, "1");
  EXPECT_EQ(set->examples[1].id, "6");
  EXPECT_EQ(set->examples[1].line, 6);
  ASSERT_EQ(set->problems.size(), 3u);
  EXPECT_NE(set->problems[0].find(path + ":2: malformed JSON"), std::string::npos) << set->problems[0];
  EXPECT_NE(set->problems[1].find(path + ":3: empty reference list"), std::string::npos) << set->problems[1];
  EXPECT_NE(set->problems[2].find(path + ":5: duplicate id \"1\""), std::string::npos) << set->problems[2];
  auto limited = load_task_files({path}, 1);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->examples.size(), 1u);
  auto missing = load_task_files({path + ".absent"});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("cannot open"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(EvalTaskSet, SharedTaskFilesLoadCleanly) {
  const auto dir = test::shared_dir() / "testdata/tasks";
  if (!std::filesystem::exists(dir / "summarize.dev.jsonl")) GTEST_SKIP() << dir << " missing";
  for (const char* f : {"summarize.dev.jsonl", "translate-en-fr.dev.jsonl", "translate-en-de.dev.jsonl",
                        "translate-en-es.dev.jsonl", "commit-message.dev.jsonl"}) {
    auto set = load_task_files({(dir / f).string()});
    ASSERT_TRUE(set) << set.error().message();
    EXPECT_TRUE(set->problems.empty()) << set->problems.front();
    EXPECT_GE(set->examples.size(), 250u) << f;
  }
}

TEST(EvalTaskSet, PromptsAndStopRulesPerKind) {
  TaskExample t;
  t.kind = TaskKind::Translate;
  t.source_lang = "en";
  t.target_lang = "de";
  t.input = "Hello.";
  const TaskPrompt p = task_prompt(t);
  EXPECT_NE(p.user.find("from English to German"), std::string::npos) << p.user;
  EXPECT_NE(p.user.find("Hello."), std::string::npos);
  EXPECT_EQ(p.stop_text, "\n");
  t.kind = TaskKind::Summarize;
  EXPECT_EQ(task_prompt(t).stop_text, "\n\n");
  t.kind = TaskKind::CommitMessage;
  EXPECT_EQ(task_prompt(t).stop_text, "\n");
  EXPECT_GT(task_prompt(t).max_tokens, 0);
}

TEST(EvalTaskSet, CommitPromptPutsTheInstructionAfterTheDiff) {
  TaskExample t;
  t.kind = TaskKind::CommitMessage;
  t.input = "--- a/x.c\n+++ b/x.c\n-int x;\n";
  const std::string u = task_prompt(t).user;
  const size_t diff = u.find(t.input), ask = u.find("commit message");
  ASSERT_NE(diff, std::string::npos) << u;
  ASSERT_NE(ask, std::string::npos) << u;
  EXPECT_LT(diff, ask) << "a small model follows the instruction it read last";
}

TEST(EvalTaskSet, CompletionPromptsForModelsWithoutATemplate) {
  TaskExample t;
  t.kind = TaskKind::Translate;
  t.source_lang = "en";
  t.target_lang = "fr";
  t.input = "The cat sleeps.";
  EXPECT_EQ(task_prompt(t).completion, "English: The cat sleeps.\nFrench:");
  EXPECT_EQ(task_prompt(t).completion_stop, "\n");
  t.kind = TaskKind::CommitMessage;
  t.input = "-a\n+b\n";  // a trailing newline is not doubled
  EXPECT_EQ(task_prompt(t).completion, "Diff:\n-a\n+b\n\nCommit message (one line):");
  t.input = "-a\n+b";
  EXPECT_EQ(task_prompt(t).completion, "Diff:\n-a\n+b\n\nCommit message (one line):");
  t.kind = TaskKind::Summarize;
  t.input = "#Person1#: Hi. #Person2#: Bye.";
  const std::string c = task_prompt(t).completion;
  EXPECT_TRUE(c.starts_with("Dialogue:\n#Person1#: Hi. #Person2#: Bye.\n\nSummary")) << c;
  EXPECT_TRUE(c.ends_with(":")) << c;
}

TEST(EvalTaskSet, AnswerSkipsFencesAndLeadInsThenStops) {
  // Plain answers: cut at the stop text, blanks trimmed.
  EXPECT_EQ(extract_answer("  Fix the build\nmore", "\n").text, "Fix the build");
  EXPECT_TRUE(extract_answer("Fix the build\n", "\n").complete);
  EXPECT_FALSE(extract_answer("Fix the bu", "\n").complete);
  EXPECT_EQ(extract_answer("\n\nFix", "\n").text, "Fix");  // leading newlines do not stop it
  // Lines before the answer: a fence, a lead-in ending in ':', in any order; the answer is the next line.
  const TaskAnswer a = extract_answer("Here is a one-line commit message:\n```\nBump version to 2.1\n```\n", "\n");
  EXPECT_EQ(a.text, "Bump version to 2.1");
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(extract_answer("```diff\n", "\n").text, "");  // the fence line alone is not an answer
  EXPECT_FALSE(extract_answer("```diff\n", "\n").complete);
  EXPECT_FALSE(extract_answer("Here is the translation:\n", "\n").complete);
  // A lead-in is only a complete line ending in ':'; an answer with a colon inside is kept.
  EXPECT_EQ(extract_answer("Fix: handle empty input\n", "\n").text, "Fix: handle empty input");
  EXPECT_EQ(extract_answer("Here is", "\n").text, "Here is");
  // A fence with text after it on the line is the answer's line, not a fence.
  EXPECT_EQ(extract_answer("```x = 1``` done\n", "\n").text, "```x = 1``` done");
  // Matching quotes or backticks around the answer go; unmatched ones stay.
  EXPECT_EQ(extract_answer("\"Update changelog\"\n", "\n").text, "Update changelog");
  EXPECT_EQ(extract_answer("`fix typo`\n", "\n").text, "fix typo");
  EXPECT_EQ(extract_answer("\"quoted\" start\n", "\n").text, "\"quoted\" start");
  // Summaries stop at a blank line; a single newline inside is kept.
  EXPECT_EQ(extract_answer("Summary:\n\nA and B talk.\nThey agree.\n\nNext", "\n\n").text,
            "A and B talk.\nThey agree.");
}

TEST(EvalTaskSet, TranslationCapGrowsWithTheSource) {
  EXPECT_EQ(translation_token_cap(0), 32);
  EXPECT_EQ(translation_token_cap(10), 62);
  EXPECT_LT(translation_token_cap(10), task_prompt(TaskExample{.kind = TaskKind::Translate}).max_tokens);
}

TEST(EvalTaskSet, ScoresUseTheTaskMetrics) {
  TaskExample t;
  t.kind = TaskKind::Translate;
  t.references = {"Le chat dort."};
  const TaskScores s = score_output(t, "Le chat dort.");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].first, "chrf");
  EXPECT_DOUBLE_EQ(s[0].second, 100.0);
  EXPECT_EQ(s[1].first, "bleu");
  t.kind = TaskKind::CommitMessage;
  EXPECT_EQ(score_output(t, "x")[0].first, "nngen_bleu");
  t.kind = TaskKind::Summarize;
  EXPECT_EQ(score_output(t, "Le chat dort")[0].first, "rougeL");
  EXPECT_DOUBLE_EQ(score_output(t, "Le chat dort")[0].second, 100.0);
}

}  // namespace
}  // namespace pocketlm
