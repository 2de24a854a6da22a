// pocketlm_kernel_bench: matmul() of a 2048 x 2048 weight of every type pocketlm multiplies, with 1 token
// (GEMV: decode) and 32 tokens (GEMM: prompt), on 1 and 2 threads; for the types with a row-interleaved
// decode layout (kernels/interleave.h) also in that layout (x16:1), as a loaded model holds them. The
// counter ns_per_block is the time per weight block of one row (32 or 256 weights): the weights (2-5 MiB)
// sit in L3, so at 1 token it is the kernel's compute cost, not the memory's (matmul_16384x4096 streams from DRAM).
// Reports the weight bytes streamed (bytes_per_second: weights streamed per second) and the counter GFLOP (a rate:
// GFLOP/s, 2 * rows * cols * tokens per call). The weights are random but valid blocks (bench/random_weights.h);
// activations are N(0, 1).
//
//   build/bin/pocketlm_kernel_bench                           # all
//   build/bin/pocketlm_kernel_bench --benchmark_filter='q4_K'  # one type
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/random_weights.h"
#include "kernels/dispatch.h"
#include "kernels/interleave.h"
#include "kernels/matmul.h"
#include "util/huge_pages.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

// The decode stream: a weight of 16384 x 4096 (36-55 MiB at 4-6 bits), far past L3, so each call reads it from
// DRAM as a model's decode does (registered as matmul_16384x4096, x16 layouts, 1 token).
constexpr int64_t kStreamRows = 16384, kStreamCols = 4096;

void BM_matmul(benchmark::State& state, GgmlType type, int64_t kRows, int64_t kCols) {
  const int64_t n_tokens = state.range(0);
  const int n_threads = static_cast<int>(state.range(1));
  const bool x16 = state.range(2) != 0;
  if (!has_vec_dot(type)) {
    state.SkipWithError("no kernel for this type");
    return;
  }
  std::vector<uint8_t> bytes(row_size(type, kCols) * kRows);
  if (Status s = fill_random_weights(type, kRows * kCols, 1, bytes); !s.ok()) {
    state.SkipWithError(s.error().message().c_str());
    return;
  }
  GgufTensor w;
  w.name = "bench.weight";
  w.type = type;
  w.n_dims = 2;
  w.ne[0] = kCols;
  w.ne[1] = kRows;
  w.data = bytes.data();
  w.nbytes = bytes.size();
  HugePageBuffer interleaved;  // as a loaded model holds them (model/weights_repack.h)
  if (x16) {
    if (kernels::gemv_x16_for(type) == nullptr) {
      state.SkipWithError("the active path has no x16 GEMV for this type");
      return;
    }
    interleaved = HugePageBuffer(bytes.size());
    const size_t rb = row_size(type, kCols);
    for (int64_t g = 0; g < kRows / kernels::kX16Rows; ++g)
      kernels::interleave_x16(type, bytes.data() + rb * kernels::kX16Rows * g, rb, kCols,
                              interleaved.data() + rb * kernels::kX16Rows * g);
    w.data = interleaved.data();
    w.interleaved_x16 = true;
  }

  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(kCols * n_tokens));
  for (float& v : x) v = normal(rng);
  std::vector<float> y(static_cast<size_t>(kRows * n_tokens));
  std::vector<uint8_t> scratch;
  ThreadPool pool(n_threads);

  for (auto _ : state) {
    matmul(w, x.data(), n_tokens, y.data(), pool, scratch);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const auto iters = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(iters * static_cast<double>(bytes.size())));
  state.counters["GFLOP"] = benchmark::Counter(iters * 2.0 * static_cast<double>(kRows * kCols * n_tokens) / 1e9,
                                               benchmark::Counter::kIsRate);
  state.counters["weight_MiB"] = static_cast<double>(bytes.size()) / (1024.0 * 1024.0);
  const double blocks = static_cast<double>(kRows * (kCols / type_traits(type).block_size));
  state.counters["ns_per_block"] =
      benchmark::Counter(iters * blocks / 1e9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetLabel(std::string(type_traits(type).name));
}

const int kRegistered = [] {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K, GgmlType::Q4_0_G64, GgmlType::Q4_0_G128}) {
    const std::string name = "matmul_2048x2048/" + std::string(type_traits(t).name);
    benchmark::RegisterBenchmark(name.c_str(), BM_matmul, t, 2048, 2048)
        ->ArgNames({"tokens", "threads", "x16"})
        ->ArgsProduct({{1, 32}, {1, 2}, {0}})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    if (kernels::has_x16_layout(t)) {
      benchmark::RegisterBenchmark(name.c_str(), BM_matmul, t, 2048, 2048)
          ->ArgNames({"tokens", "threads", "x16"})
          ->ArgsProduct({{1, 32}, {1, 2}, {1}})
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      const std::string stream = "matmul_16384x4096/" + std::string(type_traits(t).name);
      benchmark::RegisterBenchmark(stream.c_str(), BM_matmul, t, kStreamRows, kStreamCols)
          ->ArgNames({"tokens", "threads", "x16"})
          ->ArgsProduct({{1}, {1, 2}, {1}})
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  return 0;
}();

}  // namespace
}  // namespace pocketlm

BENCHMARK_MAIN();
