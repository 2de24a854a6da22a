// The baseline AArch64 path (ARMv8-A Advanced SIMD): int8 dots by widening multiplies and pairwise adds.
// Compiled with its own -march flags (src/CMakeLists.txt); dispatch.cpp calls it only on a CPU that has them.
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/softmax_ref.h"

namespace pocketlm::kernels {
namespace neon {
// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/arm/ops_arm.h"
#include "kernels/simd/block_dots.h"
#include "kernels/simd/activations.h"
#include "kernels/simd/softmax.h"
#include "kernels/kv_score.h"
#include "kernels/simd/kv_rows.h"
#include "kernels/simd/gemm_tiles.h"
// clang-format on
}  // namespace neon

// Constant-initialised (no code of this file runs here): dispatch calls this on every CPU.
const KernelTable* neon_table() {
  static constexpr KernelTable table = neon::make_table("neon");
  return &table;
}

}  // namespace pocketlm::kernels
