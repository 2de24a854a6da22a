#include "kernels/ref/activation_ref.h"

#include "formats/legacy.h"
#include "kernels/ref/vec_dot.h"

namespace pocketlm::ref {

void quantize_activations_simd_semantics(GgmlType act_type, const float* x, void* dst, int64_t n) {
  if (act_type == GgmlType::Q8_0)
    quantize_row_q8_0(x, static_cast<block_q8_0*>(dst), n, Q8Rounding::X86Simd);
  else if (act_type == GgmlType::Q8_1)
    quantize_row_q8_1(x, static_cast<block_q8_1*>(dst), n, Q8Rounding::X86Simd);
  else
    quantize_activations(act_type, x, dst, n);
}

}  // namespace pocketlm::ref
