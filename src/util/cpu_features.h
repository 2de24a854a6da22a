#pragma once
// What this CPU can run, read once. The kernels' dispatcher (kernels/dispatch.h) picks an ISA path from it.
#include <string>

namespace pocketlm {

struct CpuFeatures {
  // x86-64
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  // AArch64 (NEON is part of the base architecture)
  bool neon = false, dotprod = false, i8mm = false, fp16 = false;

  std::string describe() const;  // "avx2 fma f16c avx512f ..." (the flags that are set)
};

const CpuFeatures& cpu_features();  // detected on first call (cpuid / getauxval)

}  // namespace pocketlm
