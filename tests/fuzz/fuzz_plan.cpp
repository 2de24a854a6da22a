// libFuzzer target: the planner's parsers on arbitrary text: device profiles (YAML/JSON) when the first byte
// is even, a shape spec (then its memory plan at a small context) when it is odd.
#include <cstddef>
#include <cstdint>
#include <string>

#include "plan/device_profile.h"
#include "plan/memory_plan.h"
#include "plan/plan_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    auto r = pocketlm::parse_device_profiles(text, "fuzz.yaml");
    if (r.ok())
      for (const auto& d : *r) (void)d.budget_bytes();
    return 0;
  }
  auto m = pocketlm::plan_model_from_shape(text, {"Q4_K_M", ""});
  if (!m.ok()) return 0;
  pocketlm::MemoryOptions o;
  o.n_ctx = 64;
  (void)pocketlm::plan_memory(*m, o);
  return 0;
}
