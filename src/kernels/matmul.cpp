#include "kernels/matmul.h"

#include <algorithm>
#include <cassert>

#include "formats/dequantize.h"
#include "kernels/dispatch.h"
#include "kernels/interleave.h"
#include "kernels/packed_acts.h"
#include "kernels/ref/vec_dot.h"

namespace pocketlm {
namespace {

constexpr int64_t kBand = 16;  // rows per unit of work: whole GEMM tiles on every path, one x16 group
static_assert(kBand == kernels::kX16Rows);
// Batches of at least this many tokens use the path's packed GEMMs where it has them (kernels/packed_acts.h):
// below it, the padding of a 16-column group costs more than the packed kernel saves. Measured (llama-1b
// Q4_K_M, AVX-512, 2 threads, prompt t/s shared tiles / packed): 4 tokens 42.7 / 33.2, 6 tokens 45.9 / 48.5.
constexpr int64_t kMinPackedTokens = 6;

struct Plan {
  const GgufTensor* w;
  kernels::GemmFn gemm;
  kernels::GemvX16Fn gemv_x16;  // set: one x16 group per band (decode of an interleaved tensor)
  kernels::GemmX16Fn gemm_x16;  // set: the same for a batch
  bool per_token;               // a batch under ScopedBatchInvariance: gemv_x16 or gemm, one token at a time
  size_t w_row;
  int64_t row_begin, n_out;
  float* y;
  const uint8_t* acts;                   // x in this weight's activation type (packed groups for a packed GEMM)
  size_t act_row;                        // bytes per activation row (per packed group)
  int64_t first_band;                    // index of this weight's first band in the shared band list
  const OutlierColumns* side = nullptr;  // the outlier branch, added after each band
};

const OutlierColumns* side_of(const MatmulTarget& t) {
  return t.outliers != nullptr && t.outliers->k > 0 ? t.outliers : nullptr;
}

thread_local MatmulObserver* t_observer = nullptr;
thread_local bool t_batch_invariant = false;

// Rows [r0, r1) of an interleaved tensor back in GGUF's row layout, in a per-thread buffer: batches of more
// than one token (prefill, and decode on a path without an x16 GEMV) run the row kernels on it. A band is
// at most 16 rows, so this costs one pass over the band's bytes, shared by every token of the batch.
const uint8_t* rows_from_x16(const GgufTensor& w, int64_t r0, int64_t r1, size_t w_row) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < static_cast<size_t>(r1 - r0) * w_row) buf.resize(static_cast<size_t>(r1 - r0) * w_row);
  const size_t group_bytes = w_row * kernels::kX16Rows;
  for (int64_t r = r0; r < r1; ++r)
    kernels::deinterleave_x16_row(w.type, w.data + static_cast<size_t>(r / kernels::kX16Rows) * group_bytes, w.ne[0],
                                  static_cast<int>(r % kernels::kX16Rows),
                                  buf.data() + static_cast<size_t>(r - r0) * w_row);
  return buf.data();
}

}  // namespace

ScopedMatmulObserver::ScopedMatmulObserver(MatmulObserver& o) : previous_(t_observer) { t_observer = &o; }
ScopedMatmulObserver::~ScopedMatmulObserver() { t_observer = previous_; }

ScopedBatchInvariance::ScopedBatchInvariance() : previous_(t_batch_invariant) { t_batch_invariant = true; }
ScopedBatchInvariance::~ScopedBatchInvariance() { t_batch_invariant = previous_; }

bool OutlierColumns::same_channels(const OutlierColumns& o) const {
  return k == o.k && (idx == o.idx || std::equal(idx, idx + k, o.idx));
}

void matmul_many(std::span<const MatmulTarget> targets, const float* x, int64_t n_tokens, ThreadPool& pool,
                 std::vector<uint8_t>& scratch) {
  if (targets.empty() || n_tokens <= 0) return;
  assert(targets.size() <= 8 && "matmul_many: at most 8 targets");
  // Outlier branches: x loses the side channels before it is quantized, so every target must have the same
  // ones (the quantizer picks them per input, so Q/K/V and gate/up always agree); otherwise one at a time.
  const OutlierColumns* side = side_of(targets[0]);
  for (const MatmulTarget& t : targets) {
    const OutlierColumns* o = side_of(t);
    if ((o == nullptr) != (side == nullptr) || (o != nullptr && !o->same_channels(*side))) [[unlikely]] {
      for (const MatmulTarget& one : targets)
        matmul_many(std::span<const MatmulTarget>(&one, 1), x, n_tokens, pool, scratch);
      return;
    }
  }
  if (MatmulObserver* o = t_observer; o != nullptr) [[unlikely]] {
    for (const MatmulTarget& t : targets) o->observe(*t.w, t.row_begin, t.row_end, x, n_tokens);
  }
  const int64_t k = targets[0].w->ne[0];
  // With a side: x' (x, the side channels zeroed) for the quantized product, and the side channels gathered
  // (n_tokens rows of side->k floats) for the side product.
  const float* gathered = nullptr;
  if (side != nullptr) {
    thread_local std::vector<float> zeroed, side_x;
    zeroed.assign(x, x + n_tokens * k);
    side_x.resize(static_cast<size_t>(n_tokens * side->k));
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t j = 0; j < side->k; ++j) {
        const int64_t c = t * k + side->idx[j];
        side_x[static_cast<size_t>(t * side->k + j)] = x[c];
        zeroed[static_cast<size_t>(c)] = 0.0f;
      }
    x = zeroed.data();
    gathered = side_x.data();
  }
  // One quantized copy of x per distinct activation type (usually one: Q/K/V or gate/up share a type), and
  // for the types a packed GEMM reads, one packed copy of that.
  GgmlType types[4];
  size_t offsets[4], packed_offsets[4], group_bytes[4];
  int n_types = 0;
  size_t total = 0;
  kernels::GemmFn packed[8] = {};
  const int64_t n_groups = kernels::packed_groups(n_tokens);
  // Under ScopedBatchInvariance, the targets with no batch kernel that sums as the one-token kernel does.
  bool per_token[8] = {};
  // Interleaved and cut at group boundaries: the x16 kernels read the target's rows in place.
  bool x16_groups[8] = {};
  for (size_t i = 0; i < targets.size(); ++i) {
    const MatmulTarget& t = targets[i];
    const GgmlType at = vec_dot_type(t.w->type);
    // An interleaved weight runs the path's x16 batch GEMM where it has one (no packing, no de-interleave).
    const bool x16_batch = t.w->interleaved_x16 && kernels::gemm_x16_for(t.w->type) != nullptr;
    x16_groups[i] = t.w->interleaved_x16 && t.row_begin % kernels::kX16Rows == 0 &&
                    (t.row_end - t.row_begin) % kernels::kX16Rows == 0;
    const bool invariant = t_batch_invariant && n_tokens > 1;
    // x16: the batch GEMM sums as the GEMV does (or there is none); rows: unless the path has a separate
    // one-column kernel, the tiles' columns are the one-column product's (kernel_table.h; the packed GEMMs are
    // not promised to be, so they are left out under the scope).
    if (invariant)
      per_token[i] =
          t.w->interleaved_x16 ? !(x16_batch && x16_groups[i]) : kernels::active_table().is_batch_variant(t.w->type);
    if (n_tokens >= kMinPackedTokens && kernels::packed_group_bytes(at, k) > 0 && !x16_batch && !invariant)
      packed[i] = kernels::packed_gemm_for(t.w->type);
    int ti = 0;
    while (ti < n_types && types[ti] != at) ++ti;
    if (ti == n_types) {
      types[n_types] = at;
      offsets[n_types] = total;
      group_bytes[n_types] = 0;
      total += row_size(at, k) * static_cast<size_t>(n_tokens);
      ++n_types;
    }
    if (packed[i] != nullptr && group_bytes[ti] == 0) group_bytes[ti] = kernels::packed_group_bytes(at, k);
  }
  for (int ti = 0; ti < n_types; ++ti) {
    packed_offsets[ti] = total;
    total += group_bytes[ti] * static_cast<size_t>(n_groups);
  }
  if (scratch.size() < total) scratch.resize(total);
  uint8_t* base = scratch.data();
  pool.parallel_for(n_tokens * n_types, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const int ti = static_cast<int>(i / n_tokens);
      const int64_t t = i % n_tokens;
      const size_t ar = row_size(types[ti], k);
      kernels::quantize_activation_row(types[ti], x + t * k, base + offsets[ti] + static_cast<size_t>(t) * ar, k);
    }
  });
  bool any_packed = false;
  for (int ti = 0; ti < n_types; ++ti) any_packed = any_packed || group_bytes[ti] > 0;
  if (any_packed) {
    pool.parallel_for(n_groups * n_types, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const int ti = static_cast<int>(i / n_groups);
        const int64_t g = i % n_groups;
        if (group_bytes[ti] == 0) continue;
        kernels::pack_activation_group(types[ti], base + offsets[ti], row_size(types[ti], k), k, n_tokens, g,
                                       base + packed_offsets[ti] + group_bytes[ti] * static_cast<size_t>(g));
      }
    });
  }

  Plan plans[8];
  const size_t n_plans = targets.size();
  int64_t n_bands = 0;
  for (size_t i = 0; i < n_plans; ++i) {
    const MatmulTarget& t = targets[i];
    const GgmlType at = vec_dot_type(t.w->type);
    int ti = 0;
    while (types[ti] != at) ++ti;
    const int64_t n_out = t.row_end - t.row_begin;
    kernels::GemvX16Fn x16 = nullptr;
    kernels::GemmX16Fn x16_batch = nullptr;
    if (x16_groups[i]) {
      if (n_tokens == 1 || per_token[i])
        x16 = kernels::gemv_x16_for(t.w->type);
      else if (packed[i] == nullptr)
        x16_batch = kernels::gemm_x16_for(t.w->type);
    }
    if (packed[i] != nullptr)
      plans[i] = {t.w,
                  packed[i],
                  nullptr,
                  nullptr,
                  false,
                  row_size(t.w->type, k),
                  t.row_begin,
                  n_out,
                  t.y,
                  base + packed_offsets[ti],
                  group_bytes[ti],
                  n_bands};
    else
      plans[i] = {t.w,
                  kernels::gemm_for(t.w->type),
                  x16,
                  x16_batch,
                  per_token[i],
                  row_size(t.w->type, k),
                  t.row_begin,
                  n_out,
                  t.y,
                  base + offsets[ti],
                  row_size(at, k),
                  n_bands};
    plans[i].side = side_of(t);
    n_bands += (n_out + kBand - 1) / kBand;
  }
  const kernels::OutlierGemmFn side_gemm = side != nullptr ? kernels::outlier_gemm_for() : nullptr;
  const auto add_side = [&](const Plan& pl, int64_t r0, int64_t r1) {  // rows [r0, r1) of the plan's output
    if (pl.side == nullptr) return;
    const int64_t sk = pl.side->k;
    side_gemm(sk, pl.side->w + (pl.row_begin + r0) * sk, r1 - r0, gathered, n_tokens, pl.y + r0, pl.n_out);
  };
  pool.parallel_for(n_bands, [&](int64_t b, int64_t e, int) {
    size_t p = 0;
    for (int64_t band = b; band < e; ++band) {
      while (p + 1 < n_plans && band >= plans[p + 1].first_band) ++p;
      const Plan& pl = plans[p];
      const int64_t r0 = (band - pl.first_band) * kBand, r1 = std::min(r0 + kBand, pl.n_out);
      if (pl.per_token) {  // each token as its own decode step would compute it
        const uint8_t* w0 = pl.gemv_x16 != nullptr || !pl.w->interleaved_x16
                                ? pl.w->data + static_cast<size_t>(pl.row_begin + r0) * pl.w_row
                                : rows_from_x16(*pl.w, pl.row_begin + r0, pl.row_begin + r1, pl.w_row);
        for (int64_t tok = 0; tok < n_tokens; ++tok) {
          const uint8_t* a = pl.acts + static_cast<size_t>(tok) * pl.act_row;
          float* yt = pl.y + tok * pl.n_out + r0;
          if (pl.gemv_x16 != nullptr)
            pl.gemv_x16(k, w0, pl.w_row * kernels::kX16Rows, 1, a, yt);
          else
            pl.gemm(k, w0, pl.w_row, r1 - r0, a, pl.act_row, 1, yt, pl.n_out);
        }
        add_side(pl, r0, r1);
        continue;
      }
      if (pl.gemv_x16 != nullptr) {  // kBand == kX16Rows: a band is one group; one call for this plan's bands
        const int64_t plan_end = p + 1 < n_plans ? plans[p + 1].first_band : n_bands;
        const int64_t n = std::min(e, plan_end) - band;
        pl.gemv_x16(k, pl.w->data + static_cast<size_t>(pl.row_begin + r0) * pl.w_row, pl.w_row * kernels::kX16Rows, n,
                    pl.acts, pl.y + r0);
        add_side(pl, r0, std::min(r0 + n * kBand, pl.n_out));
        band += n - 1;
        continue;
      }
      if (pl.gemm_x16 != nullptr) {
        pl.gemm_x16(k, pl.w->data + static_cast<size_t>(pl.row_begin + r0) * pl.w_row, pl.w_row * kernels::kX16Rows, 1,
                    pl.acts, pl.act_row, n_tokens, pl.y + r0, pl.n_out);
        add_side(pl, r0, r1);
        continue;
      }
      const uint8_t* w0 = pl.w->interleaved_x16 ? rows_from_x16(*pl.w, pl.row_begin + r0, pl.row_begin + r1, pl.w_row)
                                                : pl.w->data + static_cast<size_t>(pl.row_begin + r0) * pl.w_row;
      pl.gemm(k, w0, pl.w_row, r1 - r0, pl.acts, pl.act_row, n_tokens, pl.y + r0, pl.n_out);
      add_side(pl, r0, r1);
    }
  });
}

void matmul_rows(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens, float* y,
                 ThreadPool& pool, std::vector<uint8_t>& scratch) {
  const MatmulTarget t{&w, row_begin, row_end, y};
  matmul_many(std::span<const MatmulTarget>(&t, 1), x, n_tokens, pool, scratch);
}

void matmul(const GgufTensor& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            std::vector<uint8_t>& scratch) {
  matmul_rows(w, 0, w.ne[1], x, n_tokens, y, pool, scratch);
}

void matmul(const GgufTensor& w, const OutlierColumns* outliers, const float* x, int64_t n_tokens, float* y,
            ThreadPool& pool, std::vector<uint8_t>& scratch) {
  const MatmulTarget t{&w, 0, w.ne[1], y, outliers};
  matmul_many(std::span<const MatmulTarget>(&t, 1), x, n_tokens, pool, scratch);
}

void get_row(const GgufTensor& w, int64_t row, float* out) {
  const size_t w_row = row_size(w.type, w.ne[0]);
  if (w.interleaved_x16) {
    dequantize_row(w.type, rows_from_x16(w, row, row + 1, w_row), out, w.ne[0]);
    return;
  }
  dequantize_row(w.type, w.data + static_cast<size_t>(row) * w_row, out, w.ne[0]);
}

}  // namespace pocketlm
