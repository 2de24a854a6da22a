// libFuzzer target: the imatrix parser (GGUF and legacy .dat) on arbitrary bytes, then what a quantizer and
// --show-statistics would do with the result.
#include <cstddef>
#include <cstdint>

#include "quant/imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto im = pocketlm::parse_imatrix({data, size}, "fuzz.imatrix");
  if (!im.ok()) return 0;
  for (const auto& e : im->entries)
    for (int64_t m = 0; m < e.n_mat; ++m) (void)e.importance(m);
  (void)pocketlm::format_imatrix_statistics(*im, pocketlm::imatrix_statistics(*im));
  (void)pocketlm::merge_imatrices({*im, *im}, {"a", "b"});
  return 0;
}
