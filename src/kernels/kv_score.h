// The one float formula of a quantized-KV K . Q score, shared by the scalar reference (ref/kv_rows.cpp) and
// every SIMD path (simd/kv_rows.h), so all of them give bit-identical scores: the K row and the query are
// q8/q4 rows (formats/kv_types.h), their integer dot `isum` is exact, and the score is
//     float(isum) * d_k * d_q        (evaluated left to right, no FMA: no addition is involved)
// with d_k, d_q the rows' f16 scales widened to float (exact on every path). float(isum) is exact while
// |isum| < 2^24 (head_dim <= 1040 for q8 K rows); beyond, every path rounds the same int32 the same way.
//
// Included INSIDE the namespace of each user (like simd/block_dots.h), so a copy compiled with a path's ISA
// flags is never the one the linker keeps for baseline code: no #includes here.
#pragma once

// The f16 scale bits at the start of a quantized row (native byte order, unaligned).
inline uint16_t kv_row_scale_bits(const uint8_t* row) {
  uint16_t h;
  __builtin_memcpy(&h, row, 2);
  return h;
}

inline float kv_score(int32_t isum, float d_k, float d_q) { return static_cast<float>(isum) * d_k * d_q; }
