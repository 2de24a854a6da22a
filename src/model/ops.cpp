#include "model/ops.h"

#include <array>
#include <cmath>

#include "formats/float.h"

namespace pocketlm::ops {

void rms_norm(const float* x, const float* weight, float* out, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
  if (weight)
    for (int64_t i = 0; i < n; ++i) out[i] *= weight[i];
}

void rope(float* x, int64_t rope_dim, int64_t pos, float freq_base, float freq_scale, bool neox,
          const float* freq_factors, float mscale) {
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(rope_dim));
  float theta = static_cast<float>(pos);
  const int64_t half = rope_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float angle = freq_scale * (theta / ff);
    const float c = std::cos(angle) * mscale, s = std::sin(angle) * mscale;
    const int64_t a = neox ? i : 2 * i;
    const int64_t b = neox ? i + half : 2 * i + 1;
    const float x0 = x[a], x1 = x[b];
    // As llama.cpp's CPU build evaluates these (C with FMA contraction): one rounding on the outer add.
    x[a] = std::fma(x0, c, -(x1 * s));
    x[b] = std::fma(x0, s, x1 * c);
    theta *= theta_scale;
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

namespace {
float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f, kCoef = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoef * x * x)));
}

// GELU of every half-precision value, itself rounded to half precision and widened back.
const std::array<float, 65536>& gelu_f16_table() {
  static const std::array<float, 65536> table = [] {
    std::array<float, 65536> t{};
    for (uint32_t h = 0; h < 65536; ++h)
      t[h] = fp16_to_fp32(fp32_to_fp16(gelu_tanh(fp16_to_fp32(static_cast<uint16_t>(h)))));
    return t;
  }();
  return table;
}
}  // namespace

float gelu(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return gelu_f16_table()[fp32_to_fp16(x)];
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
  const std::array<float, 65536>& table = gelu_f16_table();
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float a = g <= -10.0f ? 0.0f : g >= 10.0f ? g : table[fp32_to_fp16(g)];
    out[i] = a * up[i];
  }
}

void softcap(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] * inv) * cap;
}

}  // namespace pocketlm::ops
