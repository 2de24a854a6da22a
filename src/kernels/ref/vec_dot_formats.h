#pragma once
// The per-format scalar dot products behind vec_dot() (vec_dot.h), one per weight type, each taking its
// partner activation row. n is a multiple of the block size; rows are arrays of the block structs in
// formats/. Arithmetic follows ggml's generic (non-SIMD) CPU code, so that results match it bit for
// bit: integer sums per block are exact; the float steps are listed with each family below.
#include <cstdint>

namespace pocketlm::ref {

// F32/F16/BF16: each product is rounded to float, the sum is accumulated in double, then rounded to float.
float vec_dot_f32(int64_t n, const void* w_row, const void* act_row);
float vec_dot_f16(int64_t n, const void* w_row, const void* act_row);
float vec_dot_bf16(int64_t n, const void* w_row, const void* act_row);

// 32-element blocks; per block, in float, with dw/dx/mw/sx the f16 block fields widened and isum exact:
//   Q4_0: sum += (isum * dw) * dx          Q5_0: sum += (dw * dx) * isum      Q8_0: sum += isum * (dw * dx)
//   Q4_1, Q5_1 (with Q8_1): sum += (dw * dx) * isum + mw * sx
float vec_dot_q4_0_q8_0(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q4_1_q8_1(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q5_0_q8_0(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q5_1_q8_1(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q8_0_q8_0(int64_t n, const void* w_row, const void* act_row);
// pocketlm-only Q4_0_G64 / Q4_0_G128 (with Q8_0): each 32-element part p of a block, against activation
// block p, exactly as Q4_0: sum += (isum_p * dw) * dx_p. A G-block thus dots exactly as the G / 32 q4_0
// blocks holding the same quants and d.
float vec_dot_q4_0_g64_q8_0(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q4_0_g128_q8_0(int64_t n, const void* w_row, const void* act_row);

// Super-blocks of 256 against Q8_K (dx = float scale, bsums = sums of 16 activation quants):
//   Q2_K: sum += (dx * dw) * isum - (dx * dmin) * isum_mins, per block.
//   Q3_K, Q6_K: eight int32 lanes (lane = element index mod 8) hold the scale-weighted integer sums of a
//     block; lanes[l] += (dw * dx) * lane_l per block; the result is lanes[0] + ... + lanes[7] at the end.
//   Q4_K, Q5_K: the same lanes, plus sum -= (dmin * dx) * isum_mins per block, before adding the lanes.
float vec_dot_q2_K_q8_K(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q3_K_q8_K(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q4_K_q8_K(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q5_K_q8_K(int64_t n, const void* w_row, const void* act_row);
float vec_dot_q6_K_q8_K(int64_t n, const void* w_row, const void* act_row);

}  // namespace pocketlm::ref
