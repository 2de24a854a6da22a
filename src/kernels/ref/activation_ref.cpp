#include "kernels/ref/activation_ref.h"

#include <cassert>
#include <cmath>

#include "kernels/ref/vec_dot.h"
#include "quant/formats/float.h"
#include "quant/formats/legacy.h"
#include "quant/formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm::ref {
namespace {

float block(const float* x, int8_t* qs) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int j = 0; j < 32; ++j) qs[j] = saturate_int8(round_half_even(x[j] * id));
  return d;
}

}  // namespace

void quantize_activations_simd_semantics(GgmlType act_type, const float* x, void* dst, int64_t n) {
  assert(n % 32 == 0);
  if (act_type == GgmlType::Q8_0) {
    auto* y = static_cast<block_q8_0*>(dst);
    for (int64_t b = 0; b < n / 32; ++b) y[b].d = fp32_to_fp16(block(x + 32 * b, y[b].qs));
  } else if (act_type == GgmlType::Q8_1) {
    auto* y = static_cast<block_q8_1*>(dst);
    for (int64_t b = 0; b < n / 32; ++b) {
      const float d = block(x + 32 * b, y[b].qs);
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += y[b].qs[j];
      y[b].d = fp32_to_fp16(d);
      y[b].s = fp32_to_fp16(static_cast<float>(sum) * d);
    }
  } else {
    quantize_activations(act_type, x, dst, n);
  }
}

}  // namespace pocketlm::ref
