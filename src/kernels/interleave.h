#pragma once
// Row-interleaved weight layouts for decode ("x16"): 16 weight rows of q4_0, q4_1, q5_0, q8_0, q4_K or q6_K stored side
// by side so that one 64-byte load holds the same 4 quant bytes of each of the 16 rows. A decode GEMV then multiplies
// 16 rows at once against one broadcast activation dword: every lane of the int32 result is a different
// row, so no horizontal sums, one scale decode serves 16 rows, and each group is one contiguous stream.
// The same bytes as the GGUF rows (a group is exactly 16 rows' bytes), made at load by the model
// (model/weights_repack.h), which then releases the mapped pages: memory is not doubled.
//
// A group of 16 rows is laid out block by block (a super-block for q4_K/q6_K, a 32-block for q4_0). Within a
// block, quant dwords are ordered "position-major": dword i of the 16 rows, then dword i + 1, ... and the 16
// rows of a dword run in the position order kX16Order (rows 0-3, 8-11, 4-7, 12-15), so that a 32-byte half
// of a 64-byte chunk matches what one in-lane unpack of the naturally ordered scales gives on AVX2.
//
//   q4_0  (288 B):  d[16] f16 (position order) | qs[4 dwords][16][4]
//   q4_1  (320 B):  d[16], m[16] f16 (position order) | qs[4 dwords][16][4]
//   q5_0  (352 B):  d[16] f16 (position order) | qh[16] (each row's 32 fifth bits, position order) | qs[4
//   dwords][16][4] q8_0  (544 B):  d[16] f16 (position order) | qs[8 dwords][16][4] q4_K (2304 B):  d[16], dmin[16] f16
//   (position order) | lo[4][16 rows][2] | hi[4][16 rows] | qs[32][16][4]
//                   lo[c][r][e] = scale(2c+e) & 15 | (min(2c+e) & 15) << 4;  hi[c][r] = top 2 bits of
//                   scale(2c), min(2c), scale(2c+1), min(2c+1) in bits 0-1, 2-3, 4-5, 6-7 (6-bit values)
//   q6_K (3360 B):  d[16] f16 (position order) | scales[16 sub-blocks][16 rows] int8 | 48 quant chunks: for
//                   n = 0, 1 and l4 = 0..7 the triplet (ql dword 16n + l4, ql dword 16n + 8 + l4, qh dword
//                   8n + l4), the three chunks that hold quant dword l4 of the four 32-quant parts of half n
//                   (x16_q6_ql_chunk / x16_q6_qh_chunk), so a kernel reads a block front to back: in GGUF's
//                   order (ql then qh) it would read three streams at once, which streamed from DRAM at 11.6
//                   against 31.1 GB/s sequential on this project's VM (one thread, plain loads).
// Quant dword i of a row is bytes 4i..4i+3 of that row's qs (q4_0, q4_K) or ql / qh (q6_K): the nibble and
// bit positions inside the dword are GGUF's, so the kernels read them as the row kernels do.
#include <cstddef>
#include <cstdint>

#include "formats/ggml_type.h"

namespace pocketlm::kernels {

inline constexpr int kX16Rows = 16;
// Row held by position p of a 16-dword chunk (the permutation is its own inverse).
inline constexpr int kX16Order[kX16Rows] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};

// q6_K: byte offset of the quant chunks in a group block, and the chunk (64 bytes) holding ql dword j (0..31)
// or qh dword j (0..15) of the 16 rows.
inline constexpr size_t kX16Q6Quants = 288;
constexpr int x16_q6_ql_chunk(int j) { return 3 * (8 * (j / 16) + j % 8) + (j % 16) / 8; }
constexpr int x16_q6_qh_chunk(int j) { return 3 * j + 2; }

// Whether `t` has an x16 layout (q4_0, q4_1, q5_0, q8_0, q4_K, q6_K). A model keeps a tensor in it only where
// the active kernel path has a GEMV over it (q4_1, q5_0 and q8_0: x86 only, AVX2 and AVX-512 VNNI).
bool has_x16_layout(GgmlType t);

// Interleaves 16 rows (`src`, rows `row_bytes` apart, row_bytes = row_size(t, k)) into one group at `dst`
// (16 * row_bytes bytes). Exact: deinterleave_x16 gives the same bytes back.
void interleave_x16(GgmlType t, const uint8_t* src, size_t row_bytes, int64_t k, uint8_t* dst);

// Row `r` (0..15) of the group at `group`, in GGUF's row layout, to `dst` (row_bytes bytes).
void deinterleave_x16_row(GgmlType t, const uint8_t* group, int64_t k, int r, uint8_t* dst);

// All 16 rows of the group at `group` to `dst`, rows `row_bytes` apart.
void deinterleave_x16(GgmlType t, const uint8_t* group, int64_t k, uint8_t* dst, size_t row_bytes);

}  // namespace pocketlm::kernels
