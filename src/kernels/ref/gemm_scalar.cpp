// The scalar path: each output is one reference vec_dot (ref/vec_dot.h), so it is the oracle by definition.
#include "formats/float.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/kv_rows.h"
#include "kernels/ref/softmax_ref.h"
#include "kernels/ref/vec_dot.h"

#include <cstring>

namespace pocketlm::kernels {
namespace {

template <GgmlType T>
void gemm_ref(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
              int64_t n_cols, float* out, int64_t ldo) {
  static const VecDotFn dot = vec_dot_fn(T);
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t c = 0; c < n_cols; ++c)
      out[c * ldo + r] = dot(k, w + static_cast<size_t>(r) * w_stride, a + static_cast<size_t>(c) * a_stride);
}

template <bool kF16>
void weighted_rows_ref(int64_t n_rows, int64_t dim, const uint8_t* v, size_t v_stride, const float* p, size_t p_stride,
                       int64_t n_cols, float* out, size_t out_stride) {
  for (int64_t c = 0; c < n_cols; ++c)
    for (int64_t j = 0; j < n_rows; ++j) {
      const float w = p[c * p_stride + j];
      const uint8_t* row = v + static_cast<size_t>(j) * v_stride;
      for (int64_t i = 0; i < dim; ++i) {
        float x;
        if constexpr (kF16) {
          uint16_t h;
          std::memcpy(&h, row + 2 * i, 2);
          x = fp16_to_fp32(h);
        } else {
          std::memcpy(&x, row + 4 * i, 4);
        }
        out[c * out_stride + i] += w * x;
      }
    }
}

// Each output summed in index order, in f32: the definition the SIMD paths are compared with.
void outlier_gemm_ref(int64_t k, const uint16_t* w, int64_t n_rows, const float* x, int64_t n_cols, float* out,
                      int64_t ldo) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t c = 0; c < n_cols; ++c) {
      float s = 0.0f;
      for (int64_t j = 0; j < k; ++j) s += fp16_to_fp32(w[r * k + j]) * x[c * k + j];
      out[c * ldo + r] += s;
    }
}

KernelTable make() {
  KernelTable t;
  t.name = "scalar";
  auto set = [&t](GgmlType type, GemmFn f) { t.set_gemm(type, f); };
  set(GgmlType::F32, gemm_ref<GgmlType::F32>);
  set(GgmlType::F16, gemm_ref<GgmlType::F16>);
  set(GgmlType::BF16, gemm_ref<GgmlType::BF16>);
  set(GgmlType::Q4_0, gemm_ref<GgmlType::Q4_0>);
  set(GgmlType::Q4_1, gemm_ref<GgmlType::Q4_1>);
  set(GgmlType::Q5_0, gemm_ref<GgmlType::Q5_0>);
  set(GgmlType::Q5_1, gemm_ref<GgmlType::Q5_1>);
  set(GgmlType::Q8_0, gemm_ref<GgmlType::Q8_0>);
  set(GgmlType::Q2_K, gemm_ref<GgmlType::Q2_K>);
  set(GgmlType::Q3_K, gemm_ref<GgmlType::Q3_K>);
  set(GgmlType::Q4_K, gemm_ref<GgmlType::Q4_K>);
  set(GgmlType::Q5_K, gemm_ref<GgmlType::Q5_K>);
  set(GgmlType::Q6_K, gemm_ref<GgmlType::Q6_K>);
  set(GgmlType::Q4_0_G64, gemm_ref<GgmlType::Q4_0_G64>);
  set(GgmlType::Q4_0_G128, gemm_ref<GgmlType::Q4_0_G128>);
  t.scaled_softmax = ref::scaled_softmax;
  t.weighted_rows_f32 = weighted_rows_ref<false>;
  t.weighted_rows_f16 = weighted_rows_ref<true>;
  t.outlier_gemm = outlier_gemm_ref;
  for (KvRow r : {kKvRowQ8, kKvRowQ4}) {
    t.kv_gemm[r] = ref::kv_gemm(r);
    t.kv_weighted_rows[r] = ref::kv_weighted_rows(r);
  }
  return t;
}

}  // namespace

const KernelTable* scalar_table() {
  static const KernelTable table = make();
  return &table;
}

}  // namespace pocketlm::kernels
