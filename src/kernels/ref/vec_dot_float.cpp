#include "kernels/ref/vec_dot_formats.h"

#include "formats/float.h"
#include "formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm::ref {

float vec_dot_f32(int64_t n, const void* w_row, const void* act_row) {
  const float* w = static_cast<const float*>(w_row);
  const float* a = static_cast<const float*>(act_row);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i] * a[i]);
  return static_cast<float>(sum);
}

namespace {
// Widens in chunks (a loop the compiler vectorizes), then accumulates the float products in order in double.
template <float (*Widen)(uint16_t)>
float dot_16bit(int64_t n, const uint16_t* w, const uint16_t* a) {
  constexpr int64_t kChunk = 64;
  float wf[kChunk], af[kChunk];
  double sum = 0.0;
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t len = n - i0 < kChunk ? n - i0 : kChunk;
    for (int64_t i = 0; i < len; ++i) {
      wf[i] = Widen(w[i0 + i]);
      af[i] = Widen(a[i0 + i]);
    }
    for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(wf[i] * af[i]);
  }
  return static_cast<float>(sum);
}
}  // namespace

float vec_dot_f16(int64_t n, const void* w_row, const void* act_row) {
  return dot_16bit<fp16_to_fp32>(n, static_cast<const uint16_t*>(w_row), static_cast<const uint16_t*>(act_row));
}

float vec_dot_bf16(int64_t n, const void* w_row, const void* act_row) {
  return dot_16bit<bf16_to_fp32>(n, static_cast<const uint16_t*>(w_row), static_cast<const uint16_t*>(act_row));
}

}  // namespace pocketlm::ref
