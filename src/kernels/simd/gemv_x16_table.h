// The x16 decode GEMVs' table entries, written once for every path: each path's header (x86/gemv_x16.h,
// arm/gemv_x16_dotprod.h) defines x16::q4_0_groups, q4_K_groups and q6_K_groups (one group of 16 rows:
// blocks, group bytes, activation row, 16 outputs) and then includes this.
//
// Included INSIDE a path's namespace.
#pragma once

namespace x16 {
// kernel_table.h's GemvX16Fn: n_groups consecutive groups of 16 rows.
template <class A, int kBlock, void (*F)(int64_t, const uint8_t*, const A*, float*)>
void groups(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a, float* out) {
  const int64_t nb = k / kBlock;
  for (int64_t i = 0; i < n_groups; ++i)
    F(nb, w + static_cast<size_t>(i) * group_bytes, reinterpret_cast<const A*>(a), out + 16 * i);
}

// kernel_table.h's GemmX16Fn, where the path defines x16::*_cols<C> (16 rows x C columns): columns 4 at a
// time, the rest in one narrower tile.
template <class A, int kBlock, template <int> class Cols>
void group_cols(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a, size_t a_stride,
                int64_t n_cols, float* out, int64_t ldo) {
  const int64_t nb = k / kBlock;
  for (int64_t i = 0; i < n_groups; ++i) {
    const uint8_t* g = w + static_cast<size_t>(i) * group_bytes;
    int64_t c = 0;
    for (; c + 4 <= n_cols; c += 4)
      Cols<4>::run(nb, g, a + static_cast<size_t>(c) * a_stride, a_stride, out + c * ldo + 16 * i, ldo);
    const uint8_t* ac = a + static_cast<size_t>(c) * a_stride;
    float* oc = out + c * ldo + 16 * i;
    switch (n_cols - c) {
      case 3: Cols<3>::run(nb, g, ac, a_stride, oc, ldo); break;
      case 2: Cols<2>::run(nb, g, ac, a_stride, oc, ldo); break;
      case 1: Cols<1>::run(nb, g, ac, a_stride, oc, ldo); break;
      default: break;
    }
  }
}
}  // namespace x16

constexpr KernelTable with_x16_gemv(KernelTable t) {
  t.set_gemv_x16(GgmlType::Q4_0, x16::groups<block_q8_0, 32, x16::q4_0_groups>);
  t.set_gemv_x16(GgmlType::Q4_K, x16::groups<block_q8_K, 256, x16::q4_K_groups>);
  t.set_gemv_x16(GgmlType::Q6_K, x16::groups<block_q8_K, 256, x16::q6_K_groups>);
  return t;
}
