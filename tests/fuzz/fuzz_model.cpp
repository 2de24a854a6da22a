// libFuzzer target: a model's metadata and tensors as the loader reads them, on arbitrary bytes: the GGUF
// reader, then the architecture's configuration (ModelConfig::from_gguf: every key an architecture needs,
// RoPE factors, windows, soft-caps) and the weight binding (ModelWeights::bind: every tensor's presence, type
// and shape, fused layouts, the outlier branch's side tensors). Bad input must be an error, never a crash.
// Seeds: tests/fuzz/seeds/fuzz_model (a 1-layer llama in f16, with and without an outlier branch).
#include <cstddef>
#include <cstdint>

#include "gguf/reader.h"
#include "model/config.h"
#include "model/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = pocketlm::GgufFile::parse(pocketlm::MappedFile::from_bytes({data, size}, "fuzz.gguf"));
  if (!f.ok()) return 0;
  auto c = pocketlm::ModelConfig::from_gguf(*f);
  if (!c.ok()) return 0;
  auto w = pocketlm::ModelWeights::bind(*f, *c);
  if (!w.ok()) return 0;
  volatile size_t sink = w->total_bytes();
  (void)sink;
  return 0;
}
