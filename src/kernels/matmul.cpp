#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/ref/vec_dot.h"
#include "quant/formats/dequantize.h"

namespace pocketlm {

void matmul_rows(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens,
                 float* y, ThreadPool& pool, std::vector<uint8_t>& scratch) {
  const int64_t k = w.ne[0];
  const size_t act_row = activation_row_size(w.type, k);
  const GgmlType vdt = vec_dot_type(w.type);
  if (scratch.size() < act_row * static_cast<size_t>(n_tokens)) scratch.resize(act_row * static_cast<size_t>(n_tokens));
  uint8_t* acts = scratch.data();
  for (int64_t t = 0; t < n_tokens; ++t) quantize_activations(vdt, x + t * k, acts + static_cast<size_t>(t) * act_row, k);

  const size_t w_row = row_size(w.type, k);
  const int64_t n_out = row_end - row_begin;
  const kernels::GemmFn gemm = kernels::gemm_for(w.type);
  const uint8_t* w0 = w.data + static_cast<size_t>(row_begin) * w_row;
  // Rows are split between threads in bands of 16 (whole GEMM tiles); every thread sees all tokens.
  constexpr int64_t kBand = 16;
  const int64_t n_bands = (n_out + kBand - 1) / kBand;
  pool.parallel_for(n_bands, [&](int64_t b, int64_t e, int) {
    const int64_t r0 = b * kBand, r1 = std::min(e * kBand, n_out);
    if (r1 > r0) gemm(k, w0 + static_cast<size_t>(r0) * w_row, w_row, r1 - r0, acts, act_row, n_tokens, y + r0, n_out);
  });
}

void matmul(const GgufTensor& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            std::vector<uint8_t>& scratch) {
  matmul_rows(w, 0, w.ne[1], x, n_tokens, y, pool, scratch);
}

void get_row(const GgufTensor& w, int64_t row, float* out) {
  const size_t w_row = row_size(w.type, w.ne[0]);
  dequantize_row(w.type, w.data + static_cast<size_t>(row) * w_row, out, w.ne[0]);
}

}  // namespace pocketlm
