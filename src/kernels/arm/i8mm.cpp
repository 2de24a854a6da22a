// The AArch64 i8mm path (ARMv8.6-A + FEAT_DotProd + FEAT_I8MM): SDOT, and SMMLA 2 x 2 tiles (block_dots.h's
// Paired<>) for the 32-blocks and the k-quants.
// Compiled with its own -march flags (src/CMakeLists.txt); dispatch.cpp calls it only on a CPU that has them.
#include <arm_neon.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/interleave.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/softmax_ref.h"

namespace pocketlm::kernels {
namespace i8mm {
// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/arm/ops_arm.h"
#include "kernels/simd/block_dots.h"
#include "kernels/simd/activations.h"
#include "kernels/simd/softmax.h"
#include "kernels/kv_score.h"
#include "kernels/simd/kv_rows.h"
#include "kernels/simd/gemm_tiles.h"
#include "kernels/arm/gemv_x16_dotprod.h"
// clang-format on
}  // namespace i8mm

// Constant-initialised (no code of this file runs here): dispatch calls this on every CPU.
const KernelTable* i8mm_table() {
  static constexpr KernelTable table = i8mm::with_x16_gemv(i8mm::make_table("i8mm"));
  return &table;
}

}  // namespace pocketlm::kernels
