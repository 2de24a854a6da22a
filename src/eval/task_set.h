#pragma once
// End-task examples from the shared JSONL format (../shared/testdata/README.md, "tasks/"): one JSON object
// a line with id, task (summarize | translate | commit_message), input, references (a non-empty list of
// strings) and, for translations, source_lang and target_lang. A bad line is reported (FILE:LINE: problem)
// and skipped; the rest of the file still loads.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace pocketlm {

enum class TaskKind { Summarize, Translate, CommitMessage };

struct TaskExample {
  std::string id;
  TaskKind kind = TaskKind::Summarize;
  std::string task;  // "summarize", "translate.en-fr", "commit_message": the label results are grouped by
  std::string input;
  std::vector<std::string> references;
  std::string source_lang, target_lang;
  std::string file;
  int64_t line = 0;
  std::string key() const { return task + "/" + id; }  // unique within a run
};

struct TaskSet {
  std::vector<TaskExample> examples;
  std::vector<std::string> problems;  // "FILE:LINE: problem", one per skipped line
};

std::string_view task_kind_name(TaskKind k);

// One line of a task file; the error says what is wrong (without the FILE:LINE prefix).
Expected<TaskExample> parse_task_line(std::string_view line);

// Reads files in order. An unreadable file is an error; bad lines and ids repeated within a task are
// problems. limit > 0 keeps the first `limit` good examples of each file.
Expected<TaskSet> load_task_files(const std::vector<std::string>& paths, int64_t limit = 0);

}  // namespace pocketlm
