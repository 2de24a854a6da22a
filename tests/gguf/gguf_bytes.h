#pragma once
// Builds GGUF bytes by hand, field by field, so tests can make files the writer never would (bad counts,
// overlapping tensors, unknown types).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace pocketlm::test {

struct GgufBytes {
  std::vector<uint8_t> b;
  template <class T>
  GgufBytes& pod(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  GgufBytes& str(const std::string& s) {
    pod<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    pod<uint32_t>(0x46554747);
    pod<uint32_t>(version);
    pod<uint64_t>(n_tensors);
    return pod<uint64_t>(n_kv);
  }
  GgufBytes& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    pod<uint32_t>(4);
    return pod<uint32_t>(v);
  }
  GgufBytes& kv_str(const std::string& key, const std::string& v) {
    str(key);
    pod<uint32_t>(8);
    return str(v);
  }
  GgufBytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name);
    pod<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (auto d : ne) pod<uint64_t>(d);
    pod<uint32_t>(type);
    return pod<uint64_t>(offset);
  }
  GgufBytes& align(size_t a = 32) {
    while (b.size() % a) b.push_back(0);
    return *this;
  }
  GgufBytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

}  // namespace pocketlm::test
