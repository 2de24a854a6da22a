#include "kernels/packed_acts.h"

#include <cstring>

#include "formats/float.h"
#include "formats/kquants.h"
#include "formats/legacy.h"

namespace pocketlm::kernels {

size_t packed_group_bytes(GgmlType act_type, int64_t k) {
  switch (act_type) {
    case GgmlType::Q8_0: return static_cast<size_t>(k / QK8_0) * sizeof(PackedQ8_0);
    case GgmlType::Q8_K: return static_cast<size_t>(k / QK_K) * sizeof(PackedQ8_K);
    default: return 0;
  }
}

namespace {

// The quants of one column block into the interleaved qs[j][c][i] array (n_quads groups of 4).
void interleave(const int8_t* q, int n_quads, int c, int8_t (*dst)[kPackCols][4]) {
  for (int j = 0; j < n_quads; ++j) std::memcpy(dst[j][c], q + 4 * j, 4);
}

void pack_q8_0(const uint8_t* rows, size_t row_stride, int64_t k, int64_t n_cols, int64_t g, uint8_t* dst) {
  const int64_t nb = k / QK8_0, c0 = g * kPackCols;
  auto* out = reinterpret_cast<PackedQ8_0*>(dst);
  std::memset(dst, 0, static_cast<size_t>(nb) * sizeof(PackedQ8_0));
  for (int c = 0; c < kPackCols && c0 + c < n_cols; ++c) {
    const auto* row = reinterpret_cast<const block_q8_0*>(rows + static_cast<size_t>(c0 + c) * row_stride);
    for (int64_t b = 0; b < nb; ++b) {
      interleave(row[b].qs, QK8_0 / 4, c, out[b].qs);
      out[b].d[c] = fp16_to_fp32(row[b].d);
      int32_t s = 0;
      for (int i = 0; i < QK8_0; ++i) s += row[b].qs[i];
      out[b].sum[c] = s;
    }
  }
}

void pack_q8_K(const uint8_t* rows, size_t row_stride, int64_t k, int64_t n_cols, int64_t g, uint8_t* dst) {
  const int64_t nb = k / QK_K, c0 = g * kPackCols;
  auto* out = reinterpret_cast<PackedQ8_K*>(dst);
  std::memset(dst, 0, static_cast<size_t>(nb) * sizeof(PackedQ8_K));
  for (int c = 0; c < kPackCols && c0 + c < n_cols; ++c) {
    const auto* row = reinterpret_cast<const block_q8_K*>(rows + static_cast<size_t>(c0 + c) * row_stride);
    for (int64_t b = 0; b < nb; ++b) {
      interleave(row[b].qs, QK_K / 4, c, out[b].qs);
      out[b].d[c] = row[b].d;
      for (int p = 0; p < 8; ++p) {
        out[b].bsums[p][c][0] = row[b].bsums[2 * p];
        out[b].bsums[p][c][1] = row[b].bsums[2 * p + 1];
      }
    }
  }
}

}  // namespace

void pack_activation_group(GgmlType act_type, const uint8_t* rows, size_t row_stride, int64_t k, int64_t n_cols,
                           int64_t g, uint8_t* dst) {
  switch (act_type) {
    case GgmlType::Q8_0: pack_q8_0(rows, row_stride, k, n_cols, g, dst); break;
    case GgmlType::Q8_K: pack_q8_K(rows, row_stride, k, n_cols, g, dst); break;
    default: break;
  }
}

}  // namespace pocketlm::kernels
