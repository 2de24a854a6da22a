#pragma once
// Rounding rules shared by the quantizers, and the switch that keeps float arithmetic exactly as written.
// Internal to src/formats and src/kernels/ref.
#include <cmath>
#include <cstdint>

// Bit-exactness with ggml/gguf-py needs every a*b+c evaluated as two rounded operations. GCC contracts them
// into FMA by default in C++ (even with -std=c++20) when the target has FMA (-march=native), and clang does
// within expressions; so every .cpp that does format arithmetic puts this macro after its #includes.
#if defined(__clang__)
#define POCKETLM_EXACT_FLOAT_ARITHMETIC _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define POCKETLM_EXACT_FLOAT_ARITHMETIC _Pragma("GCC optimize(\"fp-contract=off\")")
#else
#define POCKETLM_EXACT_FLOAT_ARITHMETIC
#endif

namespace pocketlm {

// C's roundf (halves away from zero), written so it inlines: x - trunc(x) is exact in float.
inline float round_half_away(float x) {
  const float t = std::trunc(x);
  return std::fabs(x - t) >= 0.5f ? t + std::copysign(1.0f, x) : t;
}

// Round to nearest, halves to even (the default IEEE mode; what ggml's nearest_int computes).
inline float round_half_even(float x) { return std::nearbyint(x); }

// Clamp an integral float into int8; NaN becomes 0 (a float-to-int conversion out of range is UB). Selects, not
// branches, so that a loop of them vectorizes (with -fno-trapping-math: formats/legacy.cpp).
inline int8_t saturate_int8(float v) {
  v = v == v ? v : 0.0f;
  v = v > 127.0f ? 127.0f : v;
  v = v < -128.0f ? -128.0f : v;
  return static_cast<int8_t>(static_cast<int32_t>(v));
}

}  // namespace pocketlm
