// Results files: header, append, resume after a kill (torn last line), and clear errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/results.h"

namespace pocketlm {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("pocketlm_results_" + std::to_string(::getpid()) + "_" + name))
      .string();
}
std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ResultsHeader header() {
  ResultsHeader h;
  h.model = "m.gguf";
  h.file_size = 1234;
  h.n_params = 99;
  h.bits_per_weight = 4.5;
  h.tokenizer_hash = "0123456789abcdef";
  return h;
}

ResultRecord record(int i) {
  ResultRecord r;
  r.id = std::to_string(i);
  r.task = "summarize";
  r.key = "summarize/" + r.id;
  r.kind = "summarize";
  r.output = "out \"" + r.id + "\" é\n";
  r.scores = {{"rougeL", 10.0 * i}, {"rouge1", 1.5}};
  r.tokens = i;
  r.seconds = 0.5;
  r.stop = "eog";
  return r;
}

TEST(EvalResults, AppendThenResume) {
  const std::string p = temp_path("a.jsonl");
  std::filesystem::remove(p);
  std::vector<ResultRecord> existing;
  std::vector<std::string> notes;
  {
    auto log = ResultsLog::open(p, header(), existing, notes);
    ASSERT_TRUE(log) << log.error().message();
    EXPECT_TRUE(existing.empty());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append(record(i)).ok());
  }
  auto c = read_results(p);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->has_header);
  EXPECT_EQ(c->header.tokenizer_hash, "0123456789abcdef");
  EXPECT_DOUBLE_EQ(c->header.bits_per_weight, 4.5);
  ASSERT_EQ(c->records.size(), 3u);
  EXPECT_EQ(c->records[2].output, "out \"2\" é\n");
  EXPECT_DOUBLE_EQ(c->records[2].scores[0].second, 20.0);

  // A kill mid-write: the last line is cut. Resuming keeps the complete lines and drops the torn one.
  const std::string full = slurp(p);
  std::filesystem::resize_file(p, full.size() - 10);
  {
    auto log = ResultsLog::open(p, header(), existing, notes);
    ASSERT_TRUE(log) << log.error().message();
    ASSERT_EQ(existing.size(), 2u);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("torn"), std::string::npos);
    ASSERT_TRUE(log->append(record(2)).ok());
  }
  EXPECT_EQ(slurp(p), full);
  std::filesystem::remove(p);
}

TEST(EvalResults, AnotherModelIsAClearError) {
  const std::string p = temp_path("b.jsonl");
  std::filesystem::remove(p);
  std::vector<ResultRecord> existing;
  std::vector<std::string> notes;
  { ASSERT_TRUE(ResultsLog::open(p, header(), existing, notes)); }
  ResultsHeader other = header();
  other.file_size = 999;
  auto r = ResultsLog::open(p, other, existing, notes);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("another model"), std::string::npos) << r.error().message();
  std::filesystem::remove(p);
}

TEST(EvalResults, CorruptionBeforeTheLastLineIsAnError) {
  const std::string p = temp_path("c.jsonl");
  std::ofstream(p, std::ios::binary) << header_to_json(header()) << "\n{broken\n" << record_to_json(record(1)) << "\n";
  auto c = read_results(p);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find(p + ":2:"), std::string::npos) << c.error().message();
  std::ofstream(p, std::ios::binary) << header_to_json(header()) << "\n"
                                     << record_to_json(record(1)) << "\n"
                                     << record_to_json(record(1)) << "\n";
  auto d = read_results(p);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("appears twice"), std::string::npos) << d.error().message();
  std::filesystem::remove(p);
}

TEST(EvalResults, InvalidUtf8InAnOutputIsReplacedNotFatal) {
  ResultRecord r = record(1);
  r.output = "bad \xC3 byte";
  const std::string line = record_to_json(r);
  EXPECT_NE(line.find("\xEF\xBF\xBD"), std::string::npos);
}

}  // namespace
}  // namespace pocketlm
