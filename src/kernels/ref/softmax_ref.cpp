#include "kernels/ref/softmax_ref.h"

#include <cmath>

#include "formats/float.h"

namespace pocketlm::ref {

void scaled_softmax(float* x, int64_t n, float scale, bool round_f16) {
  if (n <= 0) return;
  float max = -INFINITY;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    x[i] *= scale;
    nan = nan || std::isnan(x[i]);
    max = x[i] > max ? x[i] : max;
  }
  if (nan) max = NAN;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float e = std::exp(x[i] - max);
    sum += static_cast<double>(e);
    x[i] = e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  if (round_f16)
    for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

}  // namespace pocketlm::ref
