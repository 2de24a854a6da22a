#pragma once
// The results file of `pocketlm eval`: JSON Lines. Line 1 is a header describing the model (so that
// `eval compare` needs no flags); every further line is one scored example, appended and flushed as soon
// as it is done, so a killed run loses at most the example in flight. Reopening a file resumes it: its
// examples are kept, a torn last line (no newline, or not JSON) is cut off and redone, and a file written
// for another model is an error. Format: docs/evaluation-tasks.md.
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "eval/task_runner.h"
#include "gguf/reader.h"
#include "util/error.h"

namespace pocketlm {

inline constexpr int kResultsFormatVersion = 1;
// Bumped whenever a prompt, stop rule or metric of task_runner.cpp changes: results of another version
// are not mixed into one file.
inline constexpr int kTaskPromptVersion = 1;

struct ResultsHeader {
  std::string model;           // path as given
  uint64_t file_size = 0;      // bytes
  int64_t n_params = 0;        // elements of all tensors
  double bits_per_weight = 0;  // 8 × tensor bytes / n_params
  std::string tokenizer_hash;  // FNV-1a 64 of the tokenizer model name and every token text (hex)
  std::string file_type;       // e.g. "Q4_1", from general.file_type when present
  std::string chat_template;   // the family used ("chatml", ...) or "none"
  int max_tokens = 0;          // --max-tokens (0: per task)
  int prompt_version = kTaskPromptVersion;
};
ResultsHeader describe_model(const GgufFile& f);

struct ResultRecord {
  std::string key, id, task, kind, output, stop;
  TaskScores scores;
  int64_t prompt_tokens = 0, tokens = 0;
  double seconds = 0;
};

std::string header_to_json(const ResultsHeader& h);
std::string record_to_json(const ResultRecord& r);

struct ResultsContent {
  bool has_header = false;
  ResultsHeader header;
  std::vector<ResultRecord> records;
  uint64_t good_bytes = 0;  // bytes up to the end of the last complete line
  bool torn_tail = false;   // a last line without newline or not parseable
};
// A missing file is an empty content. A bad line other than the last is an error naming FILE:LINE.
Expected<ResultsContent> read_results(const std::string& path);

// An open results file for appending.
class ResultsLog {
 public:
  // Creates `path` with `header`, or resumes it (see the top of this file). `existing` receives the
  // records already there. `notes` receives what was repaired (a torn line).
  static Expected<ResultsLog> open(const std::string& path, const ResultsHeader& header,
                                   std::vector<ResultRecord>& existing, std::vector<std::string>& notes);
  ResultsLog(ResultsLog&& o) noexcept : f_(std::exchange(o.f_, nullptr)), path_(std::move(o.path_)) {}
  ResultsLog& operator=(ResultsLog&&) = delete;
  ~ResultsLog();
  Status append(const ResultRecord& r);  // one line, flushed and fsync'd

 private:
  ResultsLog(std::FILE* f, std::string path) : f_(f), path_(std::move(path)) {}
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace pocketlm
