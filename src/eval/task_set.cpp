#include "eval/task_set.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

namespace pocketlm {

std::string_view task_kind_name(TaskKind k) {
  switch (k) {
    case TaskKind::Summarize: return "summarize";
    case TaskKind::Translate: return "translate";
    case TaskKind::CommitMessage: return "commit_message";
  }
  return "?";
}

namespace {

Expected<std::string> get_string(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return Error(std::string("missing field \"") + field + "\"");
  if (!it->is_string()) return Error(std::string("field \"") + field + "\" must be a string, not " + it->type_name());
  return it->get<std::string>();
}

}  // namespace

Expected<TaskExample> parse_task_line(std::string_view line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string msg = e.what();
    const auto p = msg.find("parse error");
    return Error("malformed JSON (" + (p == std::string::npos ? msg : msg.substr(p)) + ")");
  }
  if (!j.is_object()) return Error(std::string("expected a JSON object, got ") + j.type_name());
  TaskExample ex;
  {
    auto v = get_string(j, "id");
    if (!v) return v.error();
    ex.id = *v;
    if (ex.id.empty()) return Error("field \"id\" is empty");
  }
  PLM_TRY(std::string task, get_string(j, "task"));
  if (task == "summarize")
    ex.kind = TaskKind::Summarize;
  else if (task == "translate")
    ex.kind = TaskKind::Translate;
  else if (task == "commit_message")
    ex.kind = TaskKind::CommitMessage;
  else
    return Error("unknown task \"" + task + "\" (expected summarize, translate or commit_message)");
  PLM_TRY(ex.input, get_string(j, "input"));
  auto refs = j.find("references");
  if (refs == j.end()) return Error("missing field \"references\"");
  if (!refs->is_array())
    return Error(std::string("field \"references\" must be a list of strings, not ") + refs->type_name());
  if (refs->empty()) return Error("empty reference list");
  for (size_t i = 0; i < refs->size(); ++i) {
    if (!(*refs)[i].is_string()) return Error("references[" + std::to_string(i) + "] is not a string");
    ex.references.push_back((*refs)[i].get<std::string>());
  }
  ex.task = task;
  if (ex.kind == TaskKind::Translate) {
    PLM_TRY(ex.source_lang, get_string(j, "source_lang"));
    PLM_TRY(ex.target_lang, get_string(j, "target_lang"));
    if (ex.source_lang.empty() || ex.target_lang.empty()) return Error("empty source_lang or target_lang");
    ex.task = "translate." + ex.source_lang + "-" + ex.target_lang;
  }
  return ex;
}

Expected<TaskSet> load_task_files(const std::vector<std::string>& paths, int64_t limit) {
  TaskSet set;
  std::map<std::string, std::string> seen;  // key -> "file:line" of its first occurrence
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error(path + ": cannot open the task file");
    std::string line;
    int64_t n = 0, kept = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are allowed
      const std::string where = path + ":" + std::to_string(n);
      auto ex = parse_task_line(line);
      if (!ex) {
        set.problems.push_back(where + ": " + ex.error().message() + "; line skipped");
        continue;
      }
      ex->file = path;
      ex->line = n;
      auto [it, inserted] = seen.emplace(ex->key(), where);
      if (!inserted) {
        set.problems.push_back(where + ": duplicate id \"" + ex->id + "\" for task " + ex->task + " (first at " +
                               it->second + "); line skipped");
        continue;
      }
      set.examples.push_back(std::move(*ex));
      if (limit > 0 && ++kept >= limit) break;
    }
  }
  return set;
}

}  // namespace pocketlm
