// libFuzzer target: the GGUF reader on arbitrary bytes, then every accessor a loader would use.
#include <cstddef>
#include <cstdint>

#include "gguf/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = pocketlm::GgufFile::parse(pocketlm::MappedFile::from_bytes({data, size}, "fuzz.gguf"));
  if (!f.ok()) return 0;
  for (const auto& [key, v] : f->metadata()) {
    (void)v.to_display();
    (void)f->get_int(key);
    (void)f->get_string_array(key);
    (void)f->get_f32_array(key);
  }
  volatile uint8_t sink = 0;
  for (const auto& t : f->tensors())
    if (t.nbytes > 0) sink = static_cast<uint8_t>(sink ^ t.data[0] ^ t.data[t.nbytes - 1]);  // extents are in the file
  return 0;
}
