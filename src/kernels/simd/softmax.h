// Attention's softmax over one row of scores (kernel_table.h's ScaledSoftmaxFn), written once over Ops: the
// scale and the maximum in one pass, exp and the sum in a second, the reciprocal (and the f16 rounding of P)
// in a third, 8 lanes at a time. ref/softmax_ref.h is the oracle: results agree with it within the
// conformance tolerance, not bit for bit (a polynomial exp instead of libm's, float lane sums instead of one
// double sum). Each row depends on nothing but itself, so a row's bits do not depend on its batch.
//
// exp(x) for x <= 0: x = n ln 2 + r with n = round(x / ln 2) and |r| <= ln 2 / 2 (ln 2 split in two parts so
// n ln 2 is exact), exp(r) by a degree-7 polynomial (the classic minimax coefficients of single-precision exp,
// within 2 ulp on that range), times 2^n built in the exponent field. x is clamped below at -87.3 so 2^n
// stays a normal float: probabilities under e^-87 (relative to the row's maximum) come out as ~1e-38 instead
// of 0 or a subnormal, far below anything a sum of at least 1 can see.
//
// A row holding a NaN or an infinity goes to the scalar oracle whole, so non-finite scores propagate exactly
// as there (NaN everywhere).
//
// Included INSIDE each path's namespace after ops_*.h, like activations.h.
#pragma once

namespace softmax_detail {

template <class V, class Op>
V exp_le0(V x, Op) {
  x = Op::max(x, Op::set(-87.3f));
  const V n = Op::round(Op::mul(x, Op::set(1.44269504088896341f)));
  V r = Op::fma(n, Op::set(-0.693359375f), x);  // x - n * ln2_hi (exact)
  r = Op::fma(n, Op::set(2.12194440e-4f), r);   // - n * ln2_lo
  V p = Op::set(1.9875691500e-4f);
  p = Op::fma(p, r, Op::set(1.3981999507e-3f));
  p = Op::fma(p, r, Op::set(8.3334519073e-3f));
  p = Op::fma(p, r, Op::set(4.1665795894e-2f));
  p = Op::fma(p, r, Op::set(1.6666665459e-1f));
  p = Op::fma(p, r, Op::set(5.0000001201e-1f));
  p = Op::fma(p, Op::mul(r, r), Op::add(r, Op::set(1.0f)));  // 1 + r + r^2 p(r)
  return Op::mul(p, Op::exp2_int(n));
}

// The operations exp_le0 needs, on 8 lanes (Ops) and on one float (the row's tail): the same arithmetic.
struct VecOps {
  using F8 = typename Ops::F8;
  static F8 set(float v) { return Ops::set_f(v); }
  static F8 max(F8 a, F8 b) { return Ops::max_f(a, b); }
  static F8 mul(F8 a, F8 b) { return Ops::mul_f(a, b); }
  static F8 add(F8 a, F8 b) { return Ops::add_f(a, b); }
  static F8 fma(F8 a, F8 b, F8 c) { return Ops::fma(a, b, c); }
  static F8 round(F8 v) { return Ops::round_even(v); }
  static F8 exp2_int(F8 n) { return Ops::exp2_int_f(n); }
};
struct ScalarOps {
  static float set(float v) { return v; }
  static float max(float a, float b) { return a > b ? a : b; }
  static float mul(float a, float b) { return a * b; }
  static float add(float a, float b) { return a + b; }
  static float fma(float a, float b, float c) { return std::fma(a, b, c); }
  static float round(float v) { return std::nearbyint(v); }
  static float exp2_int(float n) { return std::ldexp(1.0f, static_cast<int>(n)); }
};

}  // namespace softmax_detail

inline void scaled_softmax(float* x, int64_t n, float scale, bool round_f16) {
  using F8 = typename Ops::F8;
  using namespace softmax_detail;
  if (n <= 0) return;
  const int64_t n8 = n / 8 * 8;
  const F8 sv = Ops::set_f(scale);
  F8 mx = Ops::set_f(-INFINITY), total = Ops::zero_f();  // total: a sum of the scaled scores, to catch NaN/Inf
  float mt = -INFINITY, tt = 0.0f;
  for (int64_t i = 0; i < n8; i += 8) {
    const F8 v = Ops::mul_f(Ops::load_f32(x + i), sv);
    Ops::store_f32(x + i, v);
    mx = Ops::max_f(mx, v);
    total = Ops::add_f(total, v);
  }
  for (int64_t i = n8; i < n; ++i) {
    x[i] *= scale;
    mt = x[i] > mt ? x[i] : mt;
    tt += x[i];
  }
  if (!std::isfinite(Ops::hsum(total) + tt)) {  // a NaN or an infinity (or a sum that overflows): the oracle
    ::pocketlm::ref::scaled_softmax(x, n, 1.0f, round_f16);  // x is already scaled (x * 1 is exact)
    return;
  }
  const float hm = Ops::hmax(mx), max = hm > mt ? hm : mt;
  const F8 mv = Ops::set_f(max);
  F8 s0 = Ops::zero_f(), s1 = Ops::zero_f();
  int64_t i = 0;
  for (; i + 16 <= n8; i += 16) {
    const F8 e0 = exp_le0(Ops::sub_f(Ops::load_f32(x + i), mv), VecOps{});
    const F8 e1 = exp_le0(Ops::sub_f(Ops::load_f32(x + i + 8), mv), VecOps{});
    Ops::store_f32(x + i, e0);
    Ops::store_f32(x + i + 8, e1);
    s0 = Ops::add_f(s0, e0);
    s1 = Ops::add_f(s1, e1);
  }
  for (; i < n8; i += 8) {
    const F8 e = exp_le0(Ops::sub_f(Ops::load_f32(x + i), mv), VecOps{});
    Ops::store_f32(x + i, e);
    s0 = Ops::add_f(s0, e);
  }
  double sum = static_cast<double>(Ops::hsum(Ops::add_f(s0, s1)));
  for (int64_t j = n8; j < n; ++j) {
    x[j] = exp_le0(x[j] - max, ScalarOps{});
    sum += static_cast<double>(x[j]);
  }
  const float inv = static_cast<float>(1.0 / sum);
  const F8 iv = Ops::set_f(inv);
  for (int64_t j = 0; j < n8; j += 8) {
    const F8 p = Ops::mul_f(Ops::load_f32(x + j), iv);
    Ops::store_f32(x + j, round_f16 ? Ops::round_f16_f(p) : p);
  }
  for (int64_t j = n8; j < n; ++j) {
    x[j] *= inv;
    if (round_f16) x[j] = Ops::f16(Ops::to_f16(x[j]));
  }
}
