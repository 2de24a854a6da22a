#pragma once
// Matrix multiply of a GGUF weight matrix (rows of ne[0] elements, any supported type) with a batch of f32
// activation rows. Activations are quantized once per call to the weight type's dot partner (ggml's
// "vec_dot_type": q8_0 for q4_0, q8_1 for q4_1, q8_K for k-quants, f16 for f16, ...), as llama.cpp's CPU
// backend does, so results agree with it to the last bits of the integer dot products.
#include <cstdint>
#include <span>
#include <vector>

#include "formats/ggml_type.h"
#include "gguf/reader.h"
#include "kernels/ref/vec_dot.h"  // has_vec_dot, vec_dot_type
#include "util/thread_pool.h"

namespace pocketlm {

// y[t * n_out + r] = dot(W row r, x row t) for r < n_out = w.ne[1], t < n_tokens; x rows are w.ne[0] long.
// `scratch` holds the quantized activations between calls (grown as needed, never shrunk).
void matmul(const GgufTensor& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            std::vector<uint8_t>& scratch);

// Same, for only the rows [row_begin, row_end) of W, writing y[t * (row_end - row_begin) + (r - row_begin)].
void matmul_rows(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens, float* y,
                 ThreadPool& pool, std::vector<uint8_t>& scratch);

// The outlier branch (`pocketlm quantize --outliers K`, docs/quantization.md): K input channels of a weight
// kept as a dense f16 side matrix, their columns zeroed in the quantized weight. A product with one is
//   y = Q(W, the K columns zeroed) . x'  +  W_side . x[idx]
// where x' is x with the K channels set to 0 before its activations are quantized: whatever a grid makes of a
// zeroed column (an affine grid need not hold 0 exactly) never meets an outlier activation, and the int8
// activation blocks are not scaled by one. The side product is in f32 (kernel_table.h OutlierGemmFn).
inline constexpr int64_t kMaxOutlierColumns = 256;  // at most this many, and at most half the inputs
struct OutlierColumns {
  int64_t k = 0;                 // side columns; 0: none
  const int32_t* idx = nullptr;  // k input channels, strictly increasing, each < the weight's ne[0]
  const uint16_t* w = nullptr;   // f16, one row of k values per output row (all ne[1] rows of the weight)
  bool same_channels(const OutlierColumns& o) const;
};

// Several products that share the input x (Q, K and V; gate and up): x is quantized once per activation
// type, and the row bands of all the weights are shared out between threads in one pass. At most 8 targets,
// all with ne[0] == x's row length; target i writes y[t * (row_end - row_begin) + r - row_begin]. Targets with
// an outlier branch (`outliers`) add its side product to their rows; targets that share x and disagree on
// the channels (or mix with and without) are multiplied one at a time.
struct MatmulTarget {
  const GgufTensor* w;
  int64_t row_begin, row_end;
  float* y;
  const OutlierColumns* outliers = nullptr;  // null or k == 0: none
};
void matmul_many(std::span<const MatmulTarget> targets, const float* x, int64_t n_tokens, ThreadPool& pool,
                 std::vector<uint8_t>& scratch);

// The same with an outlier branch (null: none).
void matmul(const GgufTensor& w, const OutlierColumns* outliers, const float* x, int64_t n_tokens, float* y,
            ThreadPool& pool, std::vector<uint8_t>& scratch);

// An opt-in view of every product's input, for importance matrices (`pocketlm imatrix`): while a
// ScopedMatmulObserver lives, every matmul / matmul_rows / matmul_many made *by the thread that created it*
// calls observe() once per weight, before the activations are quantized, with the f32 rows x (n_tokens rows
// of w.ne[0] floats) and the weight's row range. The call happens on that thread, before the product, so an
// observer needs no locking. A weight computed in several matmul_rows calls is reported once per call: an
// observer that counts tokens should count only the call with row_begin == 0. Without an observer the cost
// is one thread-local load and a branch per call.
class MatmulObserver {
 public:
  virtual ~MatmulObserver() = default;
  virtual void observe(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens) = 0;
};

// Installs `o` for the calling thread until destroyed; nests (the previous observer comes back).
class ScopedMatmulObserver {
 public:
  explicit ScopedMatmulObserver(MatmulObserver& o);
  ~ScopedMatmulObserver();
  ScopedMatmulObserver(const ScopedMatmulObserver&) = delete;
  ScopedMatmulObserver& operator=(const ScopedMatmulObserver&) = delete;

 private:
  MatmulObserver* previous_;
};

// While a ScopedBatchInvariance lives, every matmul / matmul_rows / matmul_many made by the thread that created
// it gives each token of a batch the same bits as a product of that token alone (a decode step). Most kernels
// already do: the x16 batch GEMMs sum each column as the x16 GEMV does, and gemm[]'s tiles sum each column as
// they do for one column (kernel_table.h; checked per path by the kernel conformance tests, under qemu for ARM).
// Under the scope the exceptions run token by token with the one-token kernel, re-reading their row band from
// cache: a weight whose path sums its row layout in a batch-dependent order (KernelTable::batch_variant:
// AVX-512's one-column GEMVs for q4_0, q4_1, q8_0, q4_K, q6_K; ARM i8mm's paired tiles) and an x16 weight on a
// path with no x16 batch GEMM (ARM); the packed GEMMs are left out. In a model
// loaded with the x16 layouts on AVX2 or AVX-512 no matrix runs token by token. Speculative decoding's
// verification pass runs under it, so greedy output with a draft is plain decoding's also at near-ties.
class ScopedBatchInvariance {
 public:
  ScopedBatchInvariance();
  ~ScopedBatchInvariance();
  ScopedBatchInvariance(const ScopedBatchInvariance&) = delete;
  ScopedBatchInvariance& operator=(const ScopedBatchInvariance&) = delete;

 private:
  bool previous_;
};

// Dequantizes row `row` of an embedding-like tensor into `out` (ne[0] floats).
void get_row(const GgufTensor& w, int64_t row, float* out);

}  // namespace pocketlm
