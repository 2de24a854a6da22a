#include "kernels/matmul.h"

#include <algorithm>
#include <cassert>

#include "kernels/dispatch.h"
#include "kernels/packed_acts.h"
#include "kernels/ref/vec_dot.h"
#include "formats/dequantize.h"

namespace pocketlm {
namespace {

constexpr int64_t kBand = 16;  // rows per unit of work: whole GEMM tiles on every path
// Batches of at least this many tokens use the path's packed GEMMs where it has them (kernels/packed_acts.h):
// below it, the padding of a 16-column group costs more than the packed kernel saves. Measured (llama-1b
// Q4_K_M, AVX-512, 2 threads, prompt t/s shared tiles / packed): 4 tokens 42.7 / 33.2, 6 tokens 45.9 / 48.5.
constexpr int64_t kMinPackedTokens = 6;

struct Plan {
  const GgufTensor* w;
  kernels::GemmFn gemm;
  size_t w_row;
  int64_t row_begin, n_out;
  float* y;
  const uint8_t* acts;  // x in this weight's activation type (packed groups for a packed GEMM)
  size_t act_row;       // bytes per activation row (per packed group)
  int64_t first_band;   // index of this weight's first band in the shared band list
};

thread_local MatmulObserver* t_observer = nullptr;

}  // namespace

ScopedMatmulObserver::ScopedMatmulObserver(MatmulObserver& o) : previous_(t_observer) { t_observer = &o; }
ScopedMatmulObserver::~ScopedMatmulObserver() { t_observer = previous_; }

void matmul_many(std::span<const MatmulTarget> targets, const float* x, int64_t n_tokens, ThreadPool& pool,
                 std::vector<uint8_t>& scratch) {
  if (targets.empty() || n_tokens <= 0) return;
  assert(targets.size() <= 8 && "matmul_many: at most 8 targets");
  if (MatmulObserver* o = t_observer; o != nullptr) [[unlikely]] {
    for (const MatmulTarget& t : targets) o->observe(*t.w, t.row_begin, t.row_end, x, n_tokens);
  }
  const int64_t k = targets[0].w->ne[0];
  // One quantized copy of x per distinct activation type (usually one: Q/K/V or gate/up share a type), and
  // for the types a packed GEMM reads, one packed copy of that.
  GgmlType types[4];
  size_t offsets[4], packed_offsets[4], group_bytes[4];
  int n_types = 0;
  size_t total = 0;
  kernels::GemmFn packed[8] = {};
  const int64_t n_groups = kernels::packed_groups(n_tokens);
  for (size_t i = 0; i < targets.size(); ++i) {
    const MatmulTarget& t = targets[i];
    const GgmlType at = vec_dot_type(t.w->type);
    if (n_tokens >= kMinPackedTokens && kernels::packed_group_bytes(at, k) > 0)
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
    if (packed[i] != nullptr)
      plans[i] = {t.w, packed[i], row_size(t.w->type, k), t.row_begin, n_out, t.y, base + packed_offsets[ti],
                  group_bytes[ti], n_bands};
    else
      plans[i] = {t.w, kernels::gemm_for(t.w->type), row_size(t.w->type, k), t.row_begin, n_out, t.y,
                  base + offsets[ti], row_size(at, k), n_bands};
    n_bands += (n_out + kBand - 1) / kBand;
  }
  pool.parallel_for(n_bands, [&](int64_t b, int64_t e, int) {
    size_t p = 0;
    for (int64_t band = b; band < e; ++band) {
      while (p + 1 < n_plans && band >= plans[p + 1].first_band) ++p;
      const Plan& pl = plans[p];
      const int64_t r0 = (band - pl.first_band) * kBand, r1 = std::min(r0 + kBand, pl.n_out);
      const uint8_t* w0 = pl.w->data + static_cast<size_t>(pl.row_begin + r0) * pl.w_row;
      pl.gemm(k, w0, pl.w_row, r1 - r0, pl.acts, pl.act_row, n_tokens, pl.y + r0, pl.n_out);
    }
  });
}

void matmul_rows(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens,
                 float* y, ThreadPool& pool, std::vector<uint8_t>& scratch) {
  const MatmulTarget t{&w, row_begin, row_end, y};
  matmul_many(std::span<const MatmulTarget>(&t, 1), x, n_tokens, pool, scratch);
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
