#include "kernels/matmul.h"

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
  const VecDotFn dot = vec_dot_fn(w.type);
  pool.parallel_for(n_out, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const uint8_t* wr = w.data + static_cast<size_t>(row_begin + r) * w_row;
      for (int64_t t = 0; t < n_tokens; ++t)
        y[t * n_out + r] = dot(k, wr, acts + static_cast<size_t>(t) * act_row);
    }
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
