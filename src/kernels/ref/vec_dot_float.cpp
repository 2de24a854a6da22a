#include "kernels/ref/vec_dot_formats.h"

#include "quant/formats/float.h"
#include "quant/formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm::ref {

float vec_dot_f32(int64_t n, const void* w_row, const void* act_row) {
  const float* w = static_cast<const float*>(w_row);
  const float* a = static_cast<const float*>(act_row);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i] * a[i]);
  return static_cast<float>(sum);
}

float vec_dot_f16(int64_t n, const void* w_row, const void* act_row) {
  const uint16_t* w = static_cast<const uint16_t*>(w_row);
  const uint16_t* a = static_cast<const uint16_t*>(act_row);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_fp32(w[i]) * fp16_to_fp32(a[i]));
  return static_cast<float>(sum);
}

float vec_dot_bf16(int64_t n, const void* w_row, const void* act_row) {
  const uint16_t* w = static_cast<const uint16_t*>(w_row);
  const uint16_t* a = static_cast<const uint16_t*>(act_row);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_fp32(w[i]) * bf16_to_fp32(a[i]));
  return static_cast<float>(sum);
}

}  // namespace pocketlm::ref
