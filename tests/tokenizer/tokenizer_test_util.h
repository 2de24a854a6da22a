#pragma once
// Helpers for the tokenizer tests: llama.cpp's test-vector files, and small vocabularies built in memory.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gguf/reader.h"
#include "gguf/value.h"
#include "gguf/writer.h"
#include "tokenizer/tokenizer.h"
#include "util/mapped_file.h"

namespace pocketlm::test {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// NAME.gguf.inp: strings, each followed by "\n__ggml_vocab_test__\n"; NAME.gguf.out: the ids of string i on
// line i, space-separated.
inline std::vector<VocabCase> read_vocab_cases(const std::filesystem::path& gguf) {
  const std::string inp = read_file(gguf.string() + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(gguf.string() + ".out");
  std::vector<VocabCase> cases;
  std::string line;
  for (size_t i = 0; std::getline(out, line); ++i) {
    VocabCase c;
    c.text = i < texts.size() ? texts[i] : std::string();
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  if (cases.size() != texts.size()) cases.clear();  // a malformed pair of files: the caller fails on empty
  return cases;
}

inline std::string ids_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

// Builds a metadata-only GGUF in memory with the project's writer and parses it back.
inline Expected<GgufFile> gguf_from_metadata(const Metadata& kv, const std::string& name) {
  GgufWriter w;
  for (const auto& [key, value] : kv) w.set(key, value);
  PLM_TRY(std::vector<uint8_t> bytes, w.to_bytes());
  return GgufFile::parse(MappedFile::from_bytes(bytes, name));
}

inline Expected<std::unique_ptr<Tokenizer>> tokenizer_from_metadata(const Metadata& kv, const std::string& name) {
  PLM_TRY(auto file, gguf_from_metadata(kv, name));
  return Tokenizer::from_gguf(file);
}

}  // namespace pocketlm::test
