#include "kernels/ref/vec_dot.h"

#include <cassert>
#include <cstring>
#include <limits>

#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/legacy.h"
#include "kernels/ref/vec_dot_formats.h"

namespace pocketlm {

VecDotFn vec_dot_fn(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32: return ref::vec_dot_f32;
    case GgmlType::F16: return ref::vec_dot_f16;
    case GgmlType::BF16: return ref::vec_dot_bf16;
    case GgmlType::Q4_0: return ref::vec_dot_q4_0_q8_0;
    case GgmlType::Q4_1: return ref::vec_dot_q4_1_q8_1;
    case GgmlType::Q5_0: return ref::vec_dot_q5_0_q8_0;
    case GgmlType::Q5_1: return ref::vec_dot_q5_1_q8_1;
    case GgmlType::Q8_0: return ref::vec_dot_q8_0_q8_0;
    case GgmlType::Q2_K: return ref::vec_dot_q2_K_q8_K;
    case GgmlType::Q3_K: return ref::vec_dot_q3_K_q8_K;
    case GgmlType::Q4_K: return ref::vec_dot_q4_K_q8_K;
    case GgmlType::Q5_K: return ref::vec_dot_q5_K_q8_K;
    case GgmlType::Q6_K: return ref::vec_dot_q6_K_q8_K;
    case GgmlType::Q4_0_G64: return ref::vec_dot_q4_0_g64_q8_0;
    case GgmlType::Q4_0_G128: return ref::vec_dot_q4_0_g128_q8_0;
    default: return nullptr;
  }
}

bool has_vec_dot(GgmlType weight_type) { return vec_dot_fn(weight_type) != nullptr; }

GgmlType vec_dot_type(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16: return weight_type;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0_G64:
    case GgmlType::Q4_0_G128: return GgmlType::Q8_0;
    case GgmlType::Q4_1:
    case GgmlType::Q5_1: return GgmlType::Q8_1;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: break;
  }
  assert(false && "vec_dot_type: weight type has no reference dot (check has_vec_dot)");
  return GgmlType::F32;
}

size_t activation_row_size(GgmlType weight_type, int64_t n) { return row_size(vec_dot_type(weight_type), n); }

void quantize_activations(GgmlType act_type, const float* x, void* dst, int64_t n) {
  assert(n >= 0 && n % type_traits(act_type).block_size == 0);
  switch (act_type) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: return quantize_row_f16(x, static_cast<uint16_t*>(dst), n);
    case GgmlType::BF16: return quantize_row_bf16(x, static_cast<uint16_t*>(dst), n);
    case GgmlType::Q8_0: return quantize_row_q8_0(x, static_cast<block_q8_0*>(dst), n);
    case GgmlType::Q8_1: return quantize_row_q8_1(x, static_cast<block_q8_1*>(dst), n);
    case GgmlType::Q8_K: return quantize_row_q8_K(x, static_cast<block_q8_K*>(dst), n);
    default: break;
  }
  assert(false && "quantize_activations: not an activation type");
}

float vec_dot(GgmlType weight_type, int64_t n, const void* w_row, const void* act_row) {
  const VecDotFn fn = vec_dot_fn(weight_type);
  assert(fn != nullptr && "vec_dot: weight type has no reference dot (check has_vec_dot)");
  return fn != nullptr ? fn(n, w_row, act_row) : std::numeric_limits<float>::quiet_NaN();
}

}  // namespace pocketlm
