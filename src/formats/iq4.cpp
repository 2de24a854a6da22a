#include "formats/iq4.h"

#include <cassert>

#include "formats/float.h"
#include "formats/rounding.h"

POCKETLM_EXACT_FLOAT_ARITHMETIC

namespace pocketlm {

void dequantize_row_iq4_nl(const block_iq4_nl* x, float* y, int64_t n) {
  assert(n % QK4_NL == 0);
  for (int64_t b = 0; b < n / QK4_NL; ++b, y += QK4_NL) {
    const float d = fp16_to_fp32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIq4Levels[x[b].qs[j] & 0x0F]);
      y[j + 16] = d * static_cast<float>(kIq4Levels[x[b].qs[j] >> 4]);
    }
  }
}

void dequantize_row_iq4_xs(const block_iq4_xs* x, float* y, int64_t n) {
  assert(n % 256 == 0);
  for (int64_t b = 0; b < n / 256; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int ib = 0; ib < 8; ++ib, y += 32) {
      const float dl = d * static_cast<float>(iq4_xs_scale(x[b], ib) - 32);
      const uint8_t* qs = x[b].qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * static_cast<float>(kIq4Levels[qs[j] & 0x0F]);
        y[j + 16] = dl * static_cast<float>(kIq4Levels[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace pocketlm
