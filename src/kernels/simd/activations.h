// Activation quantizers (f32 rows -> q8_0, q8_1, q8_K), written once over Ops. Inputs are finite: a NaN
// activation has no defined quant.
//
// q8_0 / q8_1 follow llama.cpp's x86 SIMD arithmetic, not ggml's generic C: the multiplier is 127 / amax
// (not 1 / (amax / 127)) and rounding is to nearest, halves to even (not away from zero). llama.cpp runs
// that code on the CPUs people compare us on, and matching it keeps greedy outputs identical for longer.
// Their scalar oracle is ref/activation_ref.h; q8_K is the same as the formats' scalar quantizer.
//
// Included INSIDE each path's namespace, like block_dots.h.
#pragma once

inline float q8_block(const float* x, int8_t* qs) {
  using F8 = typename Ops::F8;
  const F8 x0 = Ops::load_f32(x), x1 = Ops::load_f32(x + 8), x2 = Ops::load_f32(x + 16), x3 = Ops::load_f32(x + 24);
  const F8 m = Ops::max_f(Ops::max_f(Ops::abs_f(x0), Ops::abs_f(x1)), Ops::max_f(Ops::abs_f(x2), Ops::abs_f(x3)));
  const float amax = Ops::hmax(m);
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const F8 idv = Ops::set_f(id);
  Ops::store_i8(qs, Ops::pack_i8(Ops::round_even(Ops::mul_f(x0, idv)), Ops::round_even(Ops::mul_f(x1, idv)),
                                 Ops::round_even(Ops::mul_f(x2, idv)), Ops::round_even(Ops::mul_f(x3, idv))));
  return d;
}

inline void quantize_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<block_q8_0*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) y[b].d = Ops::to_f16(q8_block(x + 32 * b, y[b].qs));
}

inline void quantize_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<block_q8_1*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = q8_block(x + 32 * b, y[b].qs);
    const int sum = Ops::sum_i8(Ops::load_i8(y[b].qs));
    y[b].d = Ops::to_f16(d);
    y[b].s = Ops::to_f16(static_cast<float>(sum) * d);
  }
}

inline void quantize_q8_K(const float* x, void* dst, int64_t n) {
  using F8 = typename Ops::F8;
  auto* y = static_cast<block_q8_K*>(dst);
  for (int64_t i = 0; i < n / 256; ++i, x += 256) {
    // The signed value of largest magnitude (the first one, on ties), as the scalar quantizer picks it.
    F8 m = Ops::zero_f();
    for (int l = 0; l < 256; l += 8) m = Ops::max_f(m, Ops::abs_f(Ops::load_f32(x + l)));
    const float amax = Ops::hmax(m);
    block_q8_K& out = y[i];
    if (amax == 0.0f) {
      out.d = 0.0f;
      for (int l = 0; l < 256; ++l) out.qs[l] = 0;
      for (int j = 0; j < 16; ++j) out.bsums[j] = 0;
      continue;
    }
    float max = 0.0f;
    for (int l = 0; l < 256; ++l)
      if ((x[l] < 0 ? -x[l] : x[l]) == amax) {
        max = x[l];
        break;
      }
    const float iscale = -127.0f / max;
    const F8 s = Ops::set_f(iscale);
    for (int l = 0; l < 256; l += 32)
      Ops::store_i8(out.qs + l, Ops::pack_i8(Ops::round_even(Ops::mul_f(s, Ops::load_f32(x + l))),
                                             Ops::round_even(Ops::mul_f(s, Ops::load_f32(x + l + 8))),
                                             Ops::round_even(Ops::mul_f(s, Ops::load_f32(x + l + 16))),
                                             Ops::round_even(Ops::mul_f(s, Ops::load_f32(x + l + 24)))));
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int l = 16 * j; l < 16 * j + 16; ++l) sum += out.qs[l];
      out.bsums[j] = static_cast<int16_t>(sum);
    }
    out.d = 1.0f / iscale;
  }
}
