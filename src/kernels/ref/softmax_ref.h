#pragma once
// The scalar oracle of attention's softmax (kernel_table.h's ScaledSoftmaxFn): scale, subtract the row's
// maximum, std::exp, a double-precision sum, one reciprocal, and, when asked, each probability rounded to the
// nearest f16. A NaN anywhere in the row makes every output NaN.
#include <cstdint>

namespace pocketlm::ref {

void scaled_softmax(float* x, int64_t n, float scale, bool round_f16);

}  // namespace pocketlm::ref
