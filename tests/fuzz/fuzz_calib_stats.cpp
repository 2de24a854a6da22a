// libFuzzer target: the calibration-statistics cache parser (quant/methods/calib_stats.h) on arbitrary bytes,
// then what the quantizer does with the result (lookups, the importance matrix).
#include <cstddef>
#include <cstdint>

#include "quant/methods/calib_stats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = pocketlm::parse_calib_stats({data, size}, "fuzz.calib");
  if (!s.ok()) return 0;
  for (const auto& [name, idx] : s->weight_input) (void)s->find(name);
  (void)s->to_imatrix();
  (void)pocketlm::check_calib_stats(*s, "a", "b", "fuzz.calib");
  return 0;
}
