#pragma once
// The element-wise and row operations of the forward pass, in plain scalar C++ with ggml's arithmetic
// (double-accumulated norms, iterated RoPE angles) so results track llama.cpp's closely.
#include <cstdint>

namespace pocketlm::ops {

// out = x / sqrt(mean(x²) + eps) * weight   (weight may be null)
void rms_norm(const float* x, const float* weight, float* out, int64_t n, float eps);

// Rotary embedding of one head (head_dim values) at position `pos`, in place. Only the first `rope_dim`
// values rotate. neox: pairs (i, i + rope_dim/2); otherwise adjacent pairs (2i, 2i+1). freq_factors
// (rope_dim/2 values) divide the angles when given (Llama 3.1's rope_freqs, LongRoPE's factors); cos and
// sin are multiplied by mscale (LongRoPE's attention factor).
void rope(float* x, int64_t rope_dim, int64_t pos, float freq_base, float freq_scale, bool neox,
          const float* freq_factors = nullptr, float mscale = 1.0f);

// out[i] = silu(gate[i]) * up[i]
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x²))), as llama.cpp's CPU build evaluates it:
// for |x| < 10 the input is rounded to f16 and the result is the f16-rounded GELU of that value (a table
// of all 65,536 halves); below -10 it is 0, from 10 up it is x.
float gelu(float x);
// out[i] = gelu(gate[i]) * up[i]   (Gemma's GeGLU FFN)
void geglu(const float* gate, const float* up, float* out, int64_t n);

// x[i] = cap * tanh(x[i] / cap)   (final logit soft-capping)
void softcap(float* x, int64_t n, float cap);

}  // namespace pocketlm::ops
