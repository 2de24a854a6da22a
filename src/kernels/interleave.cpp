#include "kernels/interleave.h"

#include <cassert>
#include <cstring>

#include "formats/kquants.h"
#include "formats/legacy.h"

namespace pocketlm::kernels {
namespace {

constexpr int R = kX16Rows;

// Moves n bytes between a group and a row, in the direction asked: one function serves both ways, so the
// layout is written once.
inline void move(uint8_t* group, uint8_t* row, size_t n, bool to_group) {
  if (to_group)
    std::memcpy(group, row, n);
  else
    std::memcpy(row, group, n);
}

// Position of row r in a 16-entry chunk (kX16Order is its own inverse).
inline int pos(int r) { return kX16Order[r]; }

// The quant dwords of a block: dword i of row r sits at group + (i * 16 + pos(r)) * 4.
inline void move_dwords(uint8_t* group, uint8_t* row, int n_dwords, int r, bool to_group) {
  for (int i = 0; i < n_dwords; ++i) move(group + (static_cast<size_t>(i) * R + pos(r)) * 4, row + 4 * i, 4, to_group);
}

// One block of row r <-> the group block, per type. `row` points at the row's block.
void move_q4_0(uint8_t* g, uint8_t* row, int r, bool to_group) {
  auto* b = reinterpret_cast<block_q4_0*>(row);
  move(g + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->d), 2, to_group);
  move_dwords(g + 2 * R, b->qs, 4, r, to_group);
}

void move_q4_1(uint8_t* g, uint8_t* row, int r, bool to_group) {
  auto* b = reinterpret_cast<block_q4_1*>(row);
  move(g + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->d), 2, to_group);
  move(g + 2 * R + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->m), 2, to_group);
  move_dwords(g + 4 * R, b->qs, 4, r, to_group);
}

void move_q5_0(uint8_t* g, uint8_t* row, int r, bool to_group) {
  auto* b = reinterpret_cast<block_q5_0*>(row);
  move(g + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->d), 2, to_group);
  move(g + 2 * R + 4 * pos(r), b->qh, 4, to_group);
  move_dwords(g + 6 * R, b->qs, 4, r, to_group);
}

void move_q8_0(uint8_t* g, uint8_t* row, int r, bool to_group) {
  auto* b = reinterpret_cast<block_q8_0*>(row);
  move(g + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->d), 2, to_group);
  move_dwords(g + 2 * R, reinterpret_cast<uint8_t*>(b->qs), 8, r, to_group);
}

void move_q6_K(uint8_t* g, uint8_t* row, int r, bool to_group) {
  auto* b = reinterpret_cast<block_q6_K*>(row);
  move(g + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->d), 2, to_group);
  uint8_t* sc = g + 2 * R;
  for (int j = 0; j < QK_K / 16; ++j) move(sc + j * R + r, reinterpret_cast<uint8_t*>(b->scales + j), 1, to_group);
  uint8_t* q = g + kX16Q6Quants;
  for (int j = 0; j < QK_K / 8; ++j)
    move(q + (static_cast<size_t>(x16_q6_ql_chunk(j)) * R + pos(r)) * 4, b->ql + 4 * j, 4, to_group);
  for (int j = 0; j < QK_K / 16; ++j)
    move(q + (static_cast<size_t>(x16_q6_qh_chunk(j)) * R + pos(r)) * 4, b->qh + 4 * j, 4, to_group);
}

// q4_K: the 6-bit scales and mins are re-split into low nibbles and top bits (see interleave.h).
void move_q4_K(uint8_t* g, uint8_t* row, int r, bool to_group) {
  auto* b = reinterpret_cast<block_q4_K*>(row);
  move(g + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->d), 2, to_group);
  move(g + 2 * R + 2 * pos(r), reinterpret_cast<uint8_t*>(&b->dmin), 2, to_group);
  uint8_t* lo = g + 4 * R;   // [4][16][2]
  uint8_t* hi = lo + 8 * R;  // [4][16]
  uint8_t sc[8], mn[8];
  if (to_group) {
    for (int j = 0; j < 8; ++j) k_scale_min(b->scales, j, sc[j], mn[j]);
    for (int c = 0; c < 4; ++c) {
      for (int e = 0; e < 2; ++e)
        lo[(c * R + r) * 2 + e] = static_cast<uint8_t>((sc[2 * c + e] & 15) | (mn[2 * c + e] & 15) << 4);
      hi[c * R + r] = static_cast<uint8_t>(sc[2 * c] >> 4 | (mn[2 * c] >> 4) << 2 | (sc[2 * c + 1] >> 4) << 4 |
                                           (mn[2 * c + 1] >> 4) << 6);
    }
  } else {
    for (int c = 0; c < 4; ++c) {
      const int h = hi[c * R + r];
      for (int e = 0; e < 2; ++e) {
        const int l = lo[(c * R + r) * 2 + e];
        sc[2 * c + e] = static_cast<uint8_t>((l & 15) | ((h >> (4 * e)) & 3) << 4);
        mn[2 * c + e] = static_cast<uint8_t>((l >> 4) | ((h >> (4 * e + 2)) & 3) << 4);
      }
    }
    // GGUF's packing (k_scale_min's inverse).
    for (int j = 0; j < 4; ++j) {
      b->scales[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
      b->scales[j + 4] = static_cast<uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
      b->scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
  }
  move_dwords(hi + 4 * R, b->qs, QK_K / 8, r, to_group);
}

using MoveFn = void (*)(uint8_t*, uint8_t*, int, bool);
MoveFn mover(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return move_q4_0;
    case GgmlType::Q4_1: return move_q4_1;
    case GgmlType::Q5_0: return move_q5_0;
    case GgmlType::Q8_0: return move_q8_0;
    case GgmlType::Q4_K: return move_q4_K;
    case GgmlType::Q6_K: return move_q6_K;
    default: return nullptr;
  }
}

// Row r of a group <-> its GGUF row, block by block.
void move_row(GgmlType t, uint8_t* group, int64_t k, int r, uint8_t* row, bool to_group) {
  const MoveFn f = mover(t);
  assert(f != nullptr && r >= 0 && r < R);
  const TypeTraits& tr = type_traits(t);
  const int64_t nb = k / tr.block_size;
  const size_t bs = tr.type_size, gbs = bs * R;
  for (int64_t b = 0; b < nb; ++b)
    f(group + static_cast<size_t>(b) * gbs, row + static_cast<size_t>(b) * bs, r, to_group);
}

}  // namespace

bool has_x16_layout(GgmlType t) { return mover(t) != nullptr; }

void interleave_x16(GgmlType t, const uint8_t* src, size_t row_bytes, int64_t k, uint8_t* dst) {
  // move() only reads the row when writing the group.
  for (int r = 0; r < R; ++r)
    move_row(t, dst, k, r, const_cast<uint8_t*>(src + static_cast<size_t>(r) * row_bytes), true);
}

void deinterleave_x16_row(GgmlType t, const uint8_t* group, int64_t k, int r, uint8_t* dst) {
  move_row(t, const_cast<uint8_t*>(group), k, r, dst, false);  // reads the group only
}

void deinterleave_x16(GgmlType t, const uint8_t* group, int64_t k, uint8_t* dst, size_t row_bytes) {
  for (int r = 0; r < R; ++r) deinterleave_x16_row(t, group, k, r, dst + static_cast<size_t>(r) * row_bytes);
}

}  // namespace pocketlm::kernels
