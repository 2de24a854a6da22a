// The AVX-512 path (AVX2, FMA, F16C + AVX-512 F, BW, VL, VNNI). Compiled with those flags only (src/CMakeLists.txt);
// dispatch.cpp calls it only on a CPU that has them.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/interleave.h"
#include "kernels/kernel_table.h"
#include "kernels/packed_acts.h"
#include "kernels/ref/softmax_ref.h"

namespace pocketlm::kernels {
namespace avx512 {
// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/x86/ops_x86.h"
#include "kernels/simd/block_dots.h"
#include "kernels/simd/activations.h"
#include "kernels/simd/softmax.h"
#include "kernels/kv_score.h"
#include "kernels/simd/kv_rows.h"
#include "kernels/simd/gemm_tiles.h"
#include "kernels/simd/packed_gemm.h"
#include "kernels/x86/gemv_avx512.h"
#include "kernels/x86/gemv_x16.h"
#include "kernels/x86/gemv_x16_vnni.h"
// clang-format on
}  // namespace avx512

const KernelTable* avx512_table() {
  using namespace avx512;
  static constexpr KernelTable table =
      with_x16_gemv_vnni(with_x16_gemv(with_wide_gemv(with_packed_gemms(make_table("avx512")))));
  return &table;
}

}  // namespace pocketlm::kernels
