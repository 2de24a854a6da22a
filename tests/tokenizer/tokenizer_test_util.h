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

// Serialises metadata into GGUF v3 bytes (no tensors) and parses them back.
inline void put_value(std::vector<uint8_t>& b, const GgufValue& v) {
  auto pod = [&](auto x) {
    const size_t at = b.size();
    b.resize(at + sizeof(x));
    std::memcpy(b.data() + at, &x, sizeof(x));
  };
  auto str = [&](const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  };
  switch (v.type) {
    case GgufType::UINT8: pod(static_cast<uint8_t>(v.u)); break;
    case GgufType::INT8: pod(static_cast<int8_t>(v.i)); break;
    case GgufType::UINT16: pod(static_cast<uint16_t>(v.u)); break;
    case GgufType::INT16: pod(static_cast<int16_t>(v.i)); break;
    case GgufType::UINT32: pod(static_cast<uint32_t>(v.u)); break;
    case GgufType::INT32: pod(static_cast<int32_t>(v.i)); break;
    case GgufType::FLOAT32: pod(static_cast<float>(v.f)); break;
    case GgufType::BOOL: pod(static_cast<uint8_t>(v.u)); break;
    case GgufType::STRING: str(v.str); break;
    case GgufType::UINT64: pod(static_cast<uint64_t>(v.u)); break;
    case GgufType::INT64: pod(static_cast<int64_t>(v.i)); break;
    case GgufType::FLOAT64: pod(static_cast<double>(v.f)); break;
    case GgufType::ARRAY:
      pod(static_cast<uint32_t>(v.elem_type));
      pod(static_cast<uint64_t>(v.arr.size()));
      for (const auto& e : v.arr) put_value(b, e);
      break;
  }
}

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

inline Expected<GgufFile> gguf_from_metadata(const Metadata& kv, const std::string& name) {
  std::vector<uint8_t> b;
  auto pod = [&](auto x) {
    const size_t at = b.size();
    b.resize(at + sizeof(x));
    std::memcpy(b.data() + at, &x, sizeof(x));
  };
  pod(uint32_t{0x46554747});
  pod(uint32_t{3});
  pod(uint64_t{0});
  pod(static_cast<uint64_t>(kv.size()));
  for (const auto& [key, value] : kv) {
    pod(static_cast<uint64_t>(key.size()));
    b.insert(b.end(), key.begin(), key.end());
    pod(static_cast<uint32_t>(value.type));
    put_value(b, value);
  }
  while (b.size() % 32) b.push_back(0);
  return GgufFile::parse(MappedFile::from_bytes(b, name));
}

inline Expected<std::unique_ptr<Tokenizer>> tokenizer_from_metadata(const Metadata& kv, const std::string& name) {
  PLM_TRY(auto file, gguf_from_metadata(kv, name));
  return Tokenizer::from_gguf(file);
}

}  // namespace pocketlm::test
