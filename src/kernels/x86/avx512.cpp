// The AVX-512 path (AVX2, FMA, F16C + AVX-512 F, BW, VL, VNNI). Compiled with those flags only (src/CMakeLists.txt); dispatch.cpp calls it
// only on a CPU that has them.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <new>

#include "kernels/kernel_table.h"
#include "kernels/packed_acts.h"
#include "formats/kquants.h"
#include "formats/legacy.h"

namespace pocketlm::kernels {
namespace avx512 {
#include "kernels/x86/ops_x86.h"
#include "kernels/simd/block_dots.h"
#include "kernels/simd/activations.h"
#include "kernels/kv_score.h"
#include "kernels/simd/kv_rows.h"
#include "kernels/simd/gemm_tiles.h"
#include "kernels/simd/packed_gemm.h"
#include "kernels/x86/gemv_avx512.h"
#include "kernels/x86/gemv_x16.h"
}  // namespace avx512

const KernelTable* avx512_table() {
  static constexpr KernelTable table = avx512::with_x16_gemv(avx512::with_wide_gemv(avx512::with_packed_gemms(avx512::make_table("avx512"))));
  return &table;
}

}  // namespace pocketlm::kernels
