#include "eval/results.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace pocketlm {

// ordered_json: fields and scores stay in the order written (the first score is the task's primary metric).
using json = nlohmann::ordered_json;

ResultsHeader describe_model(const GgufFile& f) {
  ResultsHeader h;
  h.model = f.path();
  h.file_size = f.file_size();
  uint64_t bytes = 0;
  for (const auto& t : f.tensors()) {
    h.n_params += t.n_elements();
    bytes += t.nbytes;
  }
  h.bits_per_weight = h.n_params > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(h.n_params) : 0.0;
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](std::string_view s) {
    for (unsigned char c : s) {
      hash ^= c;
      hash *= 1099511628211ull;
    }
    hash ^= 0xFF;
    hash *= 1099511628211ull;
  };
  auto kind = f.get_string_or("tokenizer.ggml.model", "");
  mix(kind ? *kind : "");
  if (auto toks = f.get_string_array("tokenizer.ggml.tokens"))
    for (const auto& t : *toks) mix(t);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
  h.tokenizer_hash = buf;
  if (auto ft = f.get_int("general.file_type")) {
    static const char* kTypes[] = {"F32",    "F16",    "Q4_0",   "Q4_1",   "Q4_1_SOME_F16", "Q4_2",   "Q4_3",
                                   "Q8_0",   "Q5_0",   "Q5_1",   "Q2_K",   "Q3_K_S",        "Q3_K_M", "Q3_K_L",
                                   "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"};
    if (*ft >= 0 && *ft < static_cast<int64_t>(std::size(kTypes)))
      h.file_type = kTypes[*ft];
    else
      h.file_type = "type " + std::to_string(*ft);
  }
  return h;
}

std::string header_to_json(const ResultsHeader& h) {
  json j = {{"pocketlm_eval", kResultsFormatVersion},
            {"model", h.model},
            {"file_size", h.file_size},
            {"n_params", h.n_params},
            {"bits_per_weight", h.bits_per_weight},
            {"tokenizer_hash", h.tokenizer_hash},
            {"file_type", h.file_type},
            {"chat_template", h.chat_template},
            {"max_tokens", h.max_tokens},
            {"prompt_version", h.prompt_version}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string record_to_json(const ResultRecord& r) {
  json scores = json::object();
  for (const auto& [k, v] : r.scores) scores[k] = v;
  json j = {{"key", r.key},
            {"id", r.id},
            {"task", r.task},
            {"kind", r.kind},
            {"output", r.output},
            {"scores", scores},
            {"prompt_tokens", r.prompt_tokens},
            {"tokens", r.tokens},
            {"seconds", r.seconds},
            {"stop", r.stop}};
  // Invalid UTF-8 in a model's output (a token cut mid-character) becomes U+FFFD rather than an error.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

Expected<ResultsHeader> parse_header(const json& j) {
  if (!j.contains("pocketlm_eval")) return Error("the first line is not a pocketlm eval header");
  if (j.at("pocketlm_eval") != kResultsFormatVersion)
    return Error("results format version " + j.at("pocketlm_eval").dump() + " (this build reads " +
                 std::to_string(kResultsFormatVersion) + ")");
  ResultsHeader h;
  h.model = j.value("model", "");
  h.file_size = j.value("file_size", uint64_t{0});
  h.n_params = j.value("n_params", int64_t{0});
  h.bits_per_weight = j.value("bits_per_weight", 0.0);
  h.tokenizer_hash = j.value("tokenizer_hash", "");
  h.file_type = j.value("file_type", "");
  h.chat_template = j.value("chat_template", "");
  h.max_tokens = j.value("max_tokens", 0);
  h.prompt_version = j.value("prompt_version", 1);
  return h;
}

Expected<ResultRecord> parse_record(const json& j) {
  ResultRecord r;
  for (const char* f : {"key", "id", "task", "output"})
    if (!j.contains(f) || !j.at(f).is_string()) return Error(std::string("missing or non-string field \"") + f + "\"");
  r.key = j.at("key").get<std::string>();
  r.id = j.at("id").get<std::string>();
  r.task = j.at("task").get<std::string>();
  r.output = j.at("output").get<std::string>();
  r.kind = j.value("kind", "");
  r.stop = j.value("stop", "");
  r.prompt_tokens = j.value("prompt_tokens", int64_t{0});
  r.tokens = j.value("tokens", int64_t{0});
  r.seconds = j.value("seconds", 0.0);
  if (!j.contains("scores") || !j.at("scores").is_object()) return Error("missing field \"scores\"");
  for (const auto& [k, v] : j.at("scores").items()) {
    if (!v.is_number()) return Error("score \"" + k + "\" is not a number");
    r.scores.emplace_back(k, v.get<double>());
  }
  return r;
}

}  // namespace

Expected<ResultsContent> read_results(const std::string& path) {
  ResultsContent c;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (std::filesystem::exists(path)) return Error(path + ": cannot open");
    return c;
  }
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  int64_t line_no = 0;
  std::set<std::string> keys;
  while (pos < all.size()) {
    ++line_no;
    const size_t nl = all.find('\n', pos);
    const bool complete = nl != std::string::npos;
    const std::string line = all.substr(pos, complete ? nl - pos : std::string::npos);
    const size_t next = complete ? nl + 1 : all.size();
    const bool last = next >= all.size();
    json j;
    bool parsed = true;
    try {
      j = json::parse(line);
    } catch (const json::parse_error&) {
      parsed = false;
    }
    if (!complete || !parsed || !j.is_object()) {
      if (last) {
        c.torn_tail = true;
        break;
      }
      return Error(
          path + ":" + std::to_string(line_no) +
          ": not a JSON object (only the last line of a results file can be torn by a kill); fix or remove the file");
    }
    const std::string where = path + ":" + std::to_string(line_no);
    if (line_no == 1) {
      auto h = parse_header(j);
      if (!h) return h.error().with_context(where);
      c.header = *h;
      c.has_header = true;
    } else {
      auto r = parse_record(j);
      if (!r) return r.error().with_context(where);
      if (!keys.insert(r->key).second) return Error(where + ": example " + r->key + " appears twice");
      c.records.push_back(std::move(*r));
    }
    c.good_bytes = next;
    pos = next;
  }
  return c;
}

Expected<ResultsLog> ResultsLog::open(const std::string& path, const ResultsHeader& header,
                                      std::vector<ResultRecord>& existing, std::vector<std::string>& notes) {
  PLM_TRY(ResultsContent c, read_results(path));
  if (c.has_header) {
    const ResultsHeader& o = c.header;
    if (o.tokenizer_hash != header.tokenizer_hash || o.file_size != header.file_size || o.n_params != header.n_params)
      return Error(path + " holds results of another model (" + o.model + ", " + std::to_string(o.file_size) +
                   " bytes); write to another file, or delete it to start over")
          .about("output");
    if (o.prompt_version != header.prompt_version)
      return Error(path + " was written with task prompts version " + std::to_string(o.prompt_version) +
                   ", this build uses " + std::to_string(header.prompt_version) + "; write to another file")
          .about("output");
    if (o.max_tokens != header.max_tokens)
      return Error(path + " was written with a limit of " + std::to_string(o.max_tokens) + ", this run uses " +
                   std::to_string(header.max_tokens) + " generated tokens; write to another file")
          .about("output");
  }
  if (c.torn_tail || (!c.has_header && c.good_bytes == 0)) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      if (c.torn_tail) notes.push_back(path + ": the last line was torn (interrupted run); it is redone");
      std::filesystem::resize_file(path, c.good_bytes, ec);
      if (ec) return Error(path + ": cannot truncate the torn last line: " + ec.message());
    }
  }
  std::FILE* f = std::fopen(path.c_str(), "ab");
  if (!f) return Error(path + ": cannot open for appending: " + std::strerror(errno));
  ResultsLog log(f, path);
  if (!c.has_header) {
    const std::string line = header_to_json(header) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size() || std::fflush(f) != 0)
      return Error(path + ": write failed: " + std::strerror(errno));
  }
  existing = std::move(c.records);
  return log;
}

ResultsLog::~ResultsLog() {
  if (f_) std::fclose(f_);
}

Status ResultsLog::append(const ResultRecord& r) {
  const std::string line = record_to_json(r) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    return Error(path_ + ": write failed: " + std::strerror(errno));
  ::fsync(fileno(f_));
  return Status::Ok();
}

}  // namespace pocketlm
