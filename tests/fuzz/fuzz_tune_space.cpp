// libFuzzer target: pocketlm tune's search-space parser (YAML) on arbitrary text, then the expansion of what
// parsed into candidates.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tune/tune_space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto s = pocketlm::parse_tune_space(text, "fuzz.yaml");
  if (!s.ok()) return 0;
  auto c = pocketlm::expand_tune_space(*s);
  if (c.ok())
    for (const auto& x : *c) (void)x.id.size();
  return 0;
}
