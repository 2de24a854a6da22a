#include "formats/dequantize.h"

#include <cassert>
#include <cstring>
#include <limits>

#include "formats/float.h"
#include "formats/iq4.h"
#include "formats/kquants.h"
#include "formats/legacy.h"

namespace pocketlm {

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  assert(n >= 0 && n % type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: return dequantize_row_f16(static_cast<const uint16_t*>(src), dst, n);
    case GgmlType::BF16: return dequantize_row_bf16(static_cast<const uint16_t*>(src), dst, n);
    case GgmlType::Q4_0: return dequantize_row_q4_0(static_cast<const block_q4_0*>(src), dst, n);
    case GgmlType::Q4_1: return dequantize_row_q4_1(static_cast<const block_q4_1*>(src), dst, n);
    case GgmlType::Q5_0: return dequantize_row_q5_0(static_cast<const block_q5_0*>(src), dst, n);
    case GgmlType::Q5_1: return dequantize_row_q5_1(static_cast<const block_q5_1*>(src), dst, n);
    case GgmlType::Q8_0: return dequantize_row_q8_0(static_cast<const block_q8_0*>(src), dst, n);
    case GgmlType::Q8_1: return dequantize_row_q8_1(static_cast<const block_q8_1*>(src), dst, n);
    case GgmlType::Q2_K: return dequantize_row_q2_K(static_cast<const block_q2_K*>(src), dst, n);
    case GgmlType::Q3_K: return dequantize_row_q3_K(static_cast<const block_q3_K*>(src), dst, n);
    case GgmlType::Q4_K: return dequantize_row_q4_K(static_cast<const block_q4_K*>(src), dst, n);
    case GgmlType::Q5_K: return dequantize_row_q5_K(static_cast<const block_q5_K*>(src), dst, n);
    case GgmlType::Q6_K: return dequantize_row_q6_K(static_cast<const block_q6_K*>(src), dst, n);
    case GgmlType::Q8_K: return dequantize_row_q8_K(static_cast<const block_q8_K*>(src), dst, n);
    case GgmlType::IQ4_NL: return dequantize_row_iq4_nl(static_cast<const block_iq4_nl*>(src), dst, n);
    case GgmlType::IQ4_XS: return dequantize_row_iq4_xs(static_cast<const block_iq4_xs*>(src), dst, n);
    case GgmlType::Q4_0_G64: return dequantize_row_q4_0_g(static_cast<const block_q4_0_g64*>(src), dst, n);
    case GgmlType::Q4_0_G128: return dequantize_row_q4_0_g(static_cast<const block_q4_0_g128*>(src), dst, n);
    default: break;
  }
  assert(false && "dequantize_row: type has no reference dequantizer (check type_traits().can_dequantize)");
  for (int64_t i = 0; i < n; ++i) dst[i] = std::numeric_limits<float>::quiet_NaN();  // release builds
}

}  // namespace pocketlm
