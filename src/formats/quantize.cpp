#include "formats/quantize.h"

#include <atomic>
#include <cassert>
#include <cmath>
#include <cstring>
#include <string>

#include "formats/float.h"
#include "formats/iq4.h"
#include "formats/kquants.h"
#include "formats/legacy.h"
#include "util/thread_pool.h"

namespace pocketlm {

bool can_quantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS:
    case GgmlType::Q4_0_G64:
    case GgmlType::Q4_0_G128: return true;
    default: return false;
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n, const float* imp, QuantSearch search) {
  switch (type) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: return quantize_row_f16(src, static_cast<uint16_t*>(dst), n);
    case GgmlType::BF16: return quantize_row_bf16(src, static_cast<uint16_t*>(dst), n);
    case GgmlType::Q4_0: return encode_row_q4_0(src, static_cast<block_q4_0*>(dst), n, imp, search);
    case GgmlType::Q4_1: return encode_row_q4_1(src, static_cast<block_q4_1*>(dst), n, imp, search);
    case GgmlType::Q5_0: return encode_row_q5_0(src, static_cast<block_q5_0*>(dst), n, imp, search);
    case GgmlType::Q5_1: return encode_row_q5_1(src, static_cast<block_q5_1*>(dst), n, imp, search);
    case GgmlType::Q8_0: return encode_row_q8_0(src, static_cast<block_q8_0*>(dst), n, imp, search);
    case GgmlType::Q2_K: return encode_row_q2_K(src, static_cast<block_q2_K*>(dst), n, imp, search);
    case GgmlType::Q3_K: return encode_row_q3_K(src, static_cast<block_q3_K*>(dst), n, imp, search);
    case GgmlType::Q4_K: return encode_row_q4_K(src, static_cast<block_q4_K*>(dst), n, imp, search);
    case GgmlType::Q5_K: return encode_row_q5_K(src, static_cast<block_q5_K*>(dst), n, imp, search);
    case GgmlType::Q6_K: return encode_row_q6_K(src, static_cast<block_q6_K*>(dst), n, imp, search);
    case GgmlType::IQ4_NL: return encode_row_iq4_nl(src, static_cast<block_iq4_nl*>(dst), n, imp, search);
    case GgmlType::IQ4_XS: return encode_row_iq4_xs(src, static_cast<block_iq4_xs*>(dst), n, imp, search);
    case GgmlType::Q4_0_G64: return encode_row_q4_0_g(src, static_cast<block_q4_0_g64*>(dst), n, imp, search);
    case GgmlType::Q4_0_G128: return encode_row_q4_0_g(src, static_cast<block_q4_0_g128*>(dst), n, imp, search);
    default: break;
  }
  assert(false && "quantize_row: type cannot be written (check can_quantize)");
}

Expected<size_t> quantize_rows(GgmlType type, const float* src, void* dst, int64_t n_rows, int64_t n_per_row,
                               const float* importance, ThreadPool* pool, QuantSearch search) {
  const TypeTraits& t = type_traits(type);
  if (!can_quantize(type)) return Error("quantize: pocketlm cannot write type " + std::string(t.name));
  if (n_rows < 0 || n_per_row <= 0 || n_per_row % t.block_size != 0)
    return Error("quantize: a row of " + std::to_string(n_per_row) + " values cannot be stored as " +
                 std::string(t.name) + " (rows must be a positive multiple of " + std::to_string(t.block_size) +
                 " values)");
  if (importance)
    for (int64_t j = 0; j < n_per_row; ++j)
      if (!std::isfinite(importance[j]) || importance[j] < 0)
        return Error("quantize: importance of column " + std::to_string(j) + " is " + std::to_string(importance[j]) +
                     " (must be finite and >= 0)");
  const size_t rs = row_size(type, n_per_row);
  std::atomic<int64_t> bad_index{-1};
  auto work = [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = src + r * n_per_row;
      bool finite = true;
      for (int64_t j = 0; j < n_per_row; ++j) finite &= std::isfinite(x[j]);
      if (!finite) {
        int64_t j = 0;
        while (std::isfinite(x[j])) ++j;
        int64_t expected = -1;
        const int64_t idx = r * n_per_row + j;
        while (expected == -1 || idx < expected)  // keep the first bad value in row order
          if (bad_index.compare_exchange_weak(expected, idx)) break;
        continue;
      }
      quantize_row(type, x, static_cast<uint8_t*>(dst) + static_cast<size_t>(r) * rs, n_per_row, importance, search);
    }
  };
  if (pool && n_rows > 1)
    pool->parallel_for(n_rows, work);
  else
    work(0, n_rows, 0);
  if (const int64_t bad = bad_index.load(); bad >= 0) {
    const float v = src[bad];
    return Error("quantize: row " + std::to_string(bad / n_per_row) + ", column " + std::to_string(bad % n_per_row) +
                 " is " +
                 (std::isnan(v) ? "NaN"
                  : v > 0       ? "+Inf"
                                : "-Inf") +
                 " (only finite values can be quantized)");
  }
  return rs * static_cast<size_t>(n_rows);
}

}  // namespace pocketlm
