// Decode attention's two kernels over a KV cache of 2048 tokens for one KV head and a GQA group of 4 query
// heads (one token): K . Q (scores) and P . V (the probability-weighted sum of V rows), with f16 rows (the
// path's f16 GEMM against f16 queries, and weighted_rows_f16) against the quantized rows q8 and q4
// (kv_gemm against q8 queries, kv_weighted_rows; kernels/dispatch.h). Single thread, the active path
// (POCKETLM_ISA=name picks another). bytes_per_second counts the cached rows read.
//
//   build/bin/pocketlm_kernel_bench --benchmark_filter='kv_'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "formats/float.h"
#include "formats/kv_types.h"
#include "kernels/dispatch.h"
#include "kernels/ref/vec_dot.h"

namespace pocketlm {
namespace {

constexpr int64_t kTokens = 2048;
constexpr int64_t kGroup = 4;

struct KvData {
  std::vector<uint8_t> rows;     // kTokens rows of the KV type
  std::vector<uint8_t> queries;  // kGroup query rows (f16 for an f16 cache, else q8)
  std::vector<float> p;          // kGroup x kTokens probabilities
  size_t row_bytes = 0, query_bytes = 0;
};

KvData make_data(KvType t, int64_t hd) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  KvData d;
  d.row_bytes = kv_row_bytes(t, hd);
  d.query_bytes = t == KvType::F16 ? 2 * static_cast<size_t>(hd) : kv_row_bytes(KvType::Q8, hd);
  d.rows.resize(d.row_bytes * kTokens);
  d.queries.resize(d.query_bytes * kGroup);
  std::vector<float> x(static_cast<size_t>(hd));
  for (int64_t j = 0; j < kTokens + kGroup; ++j) {
    for (auto& v : x) v = normal(rng);
    const bool query = j >= kTokens;
    uint8_t* dst = query ? d.queries.data() + static_cast<size_t>(j - kTokens) * d.query_bytes
                         : d.rows.data() + static_cast<size_t>(j) * d.row_bytes;
    if (t == KvType::F16)
      quantize_row_f16(x.data(), reinterpret_cast<uint16_t*>(dst), hd);
    else
      kernels::quantize_kv_row(query ? KvType::Q8 : t, x.data(), dst, hd);
  }
  d.p.resize(static_cast<size_t>(kGroup * kTokens));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (auto& v : d.p) v = u(rng) / static_cast<float>(kTokens);
  return d;
}

void BM_kv_scores(benchmark::State& state, KvType t) {
  const int64_t hd = state.range(0);
  const KvData d = make_data(t, hd);
  const kernels::GemmFn gemm = t == KvType::F16 ? kernels::gemm_for(GgmlType::F16) : kernels::kv_gemm_for(t);
  std::vector<float> out(static_cast<size_t>(kTokens * kGroup));
  for (auto _ : state) {
    gemm(hd, d.rows.data(), d.row_bytes, kTokens, d.queries.data(), d.query_bytes, kGroup, out.data(), kTokens);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(d.rows.size()));
  state.SetLabel(std::string(kv_type_name(t)) + " " + kernels::active_table().name);
}

void BM_kv_weighted(benchmark::State& state, KvType t) {
  const int64_t hd = state.range(0);
  const KvData d = make_data(t, hd);
  const kernels::WeightedRowsFn f =
      t == KvType::F16 ? kernels::weighted_rows_for(true) : kernels::kv_weighted_rows_for(t);
  std::vector<float> out(static_cast<size_t>(hd * kGroup));
  for (auto _ : state) {
    std::fill(out.begin(), out.end(), 0.0f);
    f(kTokens, hd, d.rows.data(), d.row_bytes, d.p.data(), kTokens, kGroup, out.data(), static_cast<size_t>(hd));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(d.rows.size()));
  state.SetLabel(std::string(kv_type_name(t)) + " " + kernels::active_table().name);
}

const int kRegistered = [] {
  for (KvType t : {KvType::F16, KvType::Q8, KvType::Q4}) {
    const std::string kq = "kv_scores_2048x4/" + std::string(kv_type_name(t));
    benchmark::RegisterBenchmark(kq.c_str(), BM_kv_scores, t)
        ->ArgName("head_dim")
        ->Arg(64)
        ->Arg(256)
        ->Unit(benchmark::kMicrosecond);
    const std::string pv = "kv_weighted_2048x4/" + std::string(kv_type_name(t));
    benchmark::RegisterBenchmark(pv.c_str(), BM_kv_weighted, t)
        ->ArgName("head_dim")
        ->Arg(64)
        ->Arg(256)
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}();

}  // namespace
}  // namespace pocketlm
