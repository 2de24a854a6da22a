#pragma once
// The interface every ISA path implements: one GEMM per weight type, declared once here. A path is a table
// of these functions; kernels/dispatch.h picks the table for this CPU once. The scalar table (ref/) is the
// oracle the SIMD tables are tested against.
#include <cstddef>
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm::kernels {

// out[c * ldo + r] = dot(weight row r, activation row c) for r < n_rows, c < n_cols.
// Weight rows are `w_stride` bytes apart, activation rows (already in the weight type's vec_dot_type)
// `a_stride` bytes apart; k (elements per row) is a multiple of the weight type's block size.
using GemmFn = void (*)(int64_t k, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* a, size_t a_stride,
                        int64_t n_cols, float* out, int64_t ldo);

// Attention's softmax over one row of n scores, in place: x = softmax(scale * x), then, when round_f16, each
// probability rounded to the nearest f16 (ggml rounds P so before P . V over an f16 V).
using ScaledSoftmaxFn = void (*)(float* x, int64_t n, float scale, bool round_f16);

// out[c * out_stride + i] += sum over j < n_rows of p[c * p_stride + j] * V[j][i], for i < dim, c < n_cols:
// rows of V (f32 or f16, `v_stride` bytes apart) weighted by probabilities: attention's softmax(QK) . V.
// dim is a multiple of 8.
using WeightedRowsFn = void (*)(int64_t n_rows, int64_t dim, const uint8_t* v, size_t v_stride, const float* p,
                                size_t p_stride, int64_t n_cols, float* out, size_t out_stride);

// Decode GEMV over row-interleaved weights (kernels/interleave.h): out[16 i + r] = dot(row r of group i, a)
// for i < n_groups, r < 16; groups are `group_bytes` apart; `a` is one activation row in the weight type's
// vec_dot_type; k is a multiple of the type's block.
using GemvX16Fn = void (*)(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a,
                           float* out);

// The same over a batch: out[c * ldo + 16 i + r] for columns c < n_cols (activation rows a_stride bytes apart).
using GemmX16Fn = void (*)(int64_t k, const uint8_t* w, size_t group_bytes, int64_t n_groups, const uint8_t* a,
                           size_t a_stride, int64_t n_cols, float* out, int64_t ldo);

// The outlier branch's side product (kernels/matmul.h OutlierColumns): out[c * ldo + r] += sum over j < k of
// f16 w[r * k + j] times x[c * k + j], for r < n_rows, c < n_cols; x holds each column's k gathered activations
// in f32. Each output is summed in the same order whatever n_cols is (a batch gives a decode step's bits).
using OutlierGemmFn = void (*)(int64_t k, const uint16_t* w, int64_t n_rows, const float* x, int64_t n_cols, float* out,
                               int64_t ldo);

// Quantizes n floats (a multiple of the block) into an activation row (q8_0, q8_1 or q8_K), bit-exact with
// the scalar quantizers (kernels/ref/vec_dot.h quantize_activations).
using QuantizeFn = void (*)(const float* x, void* dst, int64_t n);

// The tables index their functions by a dense slot per type: ggml's ids 0..39 are their own slots, and the
// pocketlm-only types (ids 1064, 1128: formats/ggml_type.h) take the slots after them.
inline constexpr int kGgmlTypeSlots = 40;
inline constexpr int kTypeSlots = kGgmlTypeSlots + 2;
// The slot of a type, or -1 for a type no table can hold.
constexpr int type_slot(GgmlType t) {
  const auto i = static_cast<uint32_t>(t);
  if (i < static_cast<uint32_t>(kGgmlTypeSlots)) return static_cast<int>(i);
  switch (t) {
    case GgmlType::Q4_0_G64: return kGgmlTypeSlots;
    case GgmlType::Q4_0_G128: return kGgmlTypeSlots + 1;
    default: return -1;
  }
}

// The quantized KV row formats (formats/kv_types.h KvType::Q8 / Q4).
enum KvRow : int { kKvRowQ8 = 0, kKvRowQ4 = 1 };

struct KernelTable {
  const char* name = nullptr;                // "scalar", "avx2", "avx512", "neon", "dotprod", "i8mm"
  GemmFn gemm[kTypeSlots] = {};              // indexed by type_slot(); nullptr: this path has no kernel for the type
  ScaledSoftmaxFn scaled_softmax = nullptr;  // nullptr: the scalar one
  WeightedRowsFn weighted_rows_f32 = nullptr;
  WeightedRowsFn weighted_rows_f16 = nullptr;
  QuantizeFn quantize[kTypeSlots] = {};  // indexed by the activation type's slot; nullptr: the scalar quantizer
  // Quantized KV cache rows (formats/kv_types.h), indexed by KvRow: K . Q with K rows in that format and the
  // queries as q8 rows (k = head_dim), and P . V over V rows in that format. nullptr: use the scalar one.
  GemmFn kv_gemm[2] = {};
  // GEMMs over column-interleaved activations (kernels/packed_acts.h; prefill): same signature, but `a` is
  // packed_groups(n_cols) groups of packed_group_bytes(vec_dot_type(t), k) bytes and a_stride is that size.
  // nullptr: the path has none for the type (gemm[] then serves every column count).
  GemmFn gemm_packed[kTypeSlots] = {};
  WeightedRowsFn kv_weighted_rows[2] = {};
  // Decode GEMVs over row-interleaved groups (kernels/interleave.h). nullptr: the path has none for the type,
  // and model loading keeps that type's tensors in their GGUF layout.
  GemvX16Fn gemv_x16[kTypeSlots] = {};
  // Batches over the same groups (prefill). nullptr: batches de-interleave a band and run gemm[] on it.
  // Where both exist, gemm_x16's column j has gemv_x16's bits for that column alone (tested per path).
  GemmX16Fn gemm_x16[kTypeSlots] = {};
  OutlierGemmFn outlier_gemm = nullptr;  // nullptr: the scalar one
  // true: gemm[] sums a column in an order that depends on the other columns of its batch (AVX-512's separate
  // one-column GEMVs for decode; ARM i8mm's 2 x 2 SMMLA tiles, which pair columns), so a token's product
  // depends on its batch; matmul's ScopedBatchInvariance then runs such a weight token by token.
  // false: gemm[]'s column j has the bits of that column alone (tested per path by the conformance checks).
  bool batch_variant[kTypeSlots] = {};

  QuantizeFn find_quantize(GgmlType t) const {
    const int i = type_slot(t);
    return i >= 0 ? quantize[i] : nullptr;
  }

  GemmFn find(GgmlType t) const {
    const int i = type_slot(t);
    return i >= 0 ? gemm[i] : nullptr;
  }

  GemmFn find_packed(GgmlType t) const {
    const int i = type_slot(t);
    return i >= 0 ? gemm_packed[i] : nullptr;
  }

  GemvX16Fn find_x16(GgmlType t) const {
    const int i = type_slot(t);
    return i >= 0 ? gemv_x16[i] : nullptr;
  }

  GemmX16Fn find_gemm_x16(GgmlType t) const {
    const int i = type_slot(t);
    return i >= 0 ? gemm_x16[i] : nullptr;
  }

  bool is_batch_variant(GgmlType t) const {
    const int i = type_slot(t);
    return i >= 0 && batch_variant[i];
  }

  // Registration (constexpr: the SIMD tables are constant-initialised). The type must have a slot.
  constexpr void set_gemm(GgmlType t, GemmFn f) { gemm[type_slot(t)] = f; }
  // A gemm[] entry whose column sums depend on the batch (see batch_variant).
  constexpr void set_batch_variant_gemm(GgmlType t, GemmFn f) {
    gemm[type_slot(t)] = f;
    batch_variant[type_slot(t)] = true;
  }
  constexpr void set_packed_gemm(GgmlType t, GemmFn f) { gemm_packed[type_slot(t)] = f; }
  constexpr void set_gemv_x16(GgmlType t, GemvX16Fn f) { gemv_x16[type_slot(t)] = f; }
  constexpr void set_gemm_x16(GgmlType t, GemmX16Fn f) { gemm_x16[type_slot(t)] = f; }
  constexpr void set_quantize(GgmlType t, QuantizeFn f) { quantize[type_slot(t)] = f; }
};

// Each path's table, or nullptr when the path is not compiled into this binary. They do not check the CPU:
// dispatch.h does.
const KernelTable* scalar_table();
const KernelTable* avx2_table();
const KernelTable* avx512_table();
const KernelTable* neon_table();
const KernelTable* dotprod_table();
const KernelTable* i8mm_table();

}  // namespace pocketlm::kernels
