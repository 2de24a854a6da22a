// The AVX2 path (+FMA, F16C). Compiled with those flags only (src/CMakeLists.txt); dispatch.cpp calls it
// only on a CPU that has them.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/interleave.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/softmax_ref.h"

namespace pocketlm::kernels {
namespace avx2 {
// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/x86/ops_x86.h"
#include "kernels/simd/block_dots.h"
#include "kernels/simd/activations.h"
#include "kernels/simd/softmax.h"
#include "kernels/kv_score.h"
#include "kernels/simd/kv_rows.h"
#include "kernels/simd/gemm_tiles.h"
#include "kernels/x86/gemv_x16.h"
// clang-format on
}  // namespace avx2

const KernelTable* avx2_table() {
  static constexpr KernelTable table =
      avx2::with_x16_legacy(avx2::with_x16_gemm(avx2::with_x16_gemv(avx2::make_table("avx2"))));
  return &table;
}

}  // namespace pocketlm::kernels
