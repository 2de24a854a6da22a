// A token's product does not depend on the batch it is computed in: matmul over n tokens gives, for each token,
// the same bits as matmul over that token alone, on every kernel path, for every weight type with kernels, in
// the GGUF row layout and in the x16 decode layout. Speculative decoding's greedy identity rests on this: the
// target's verification pass scores k + 1 tokens in one batch and must pick the argmax that plain decoding
// (one token per step) picks, also at near-ties (docs/speculative.md, docs/kernels.md).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/ggml_type.h"
#include "formats/quantize.h"
#include "kernels/dispatch.h"
#include "kernels/interleave.h"
#include "kernels/matmul.h"
#include "util/thread_pool.h"

namespace pocketlm {
namespace {

struct PathGuard {
  ~PathGuard() { (void)kernels::force_path_for_tests(kernels::runnable_tables().front()->name); }
};

std::vector<GgmlType> types_with_kernels() {
  return {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
          GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
          GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
}

// Weights of `t` from Gaussian floats (rows x k), optionally interleaved 16 rows at a time as the model does
// at load when the active path has a decode GEMV for the type.
struct Weights {
  std::vector<uint8_t> bytes;
  GgufTensor tensor;
};
Weights make(GgmlType t, int64_t k, int64_t rows, bool x16, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(k * rows));
  for (float& v : f) v = g(rng);
  Weights w;
  const size_t rs = row_size(t, k);
  w.bytes.resize(rs * static_cast<size_t>(rows));
  auto n = quantize_rows(t, f.data(), w.bytes.data(), rows, k, nullptr, nullptr);
  EXPECT_TRUE(n.ok()) << type_traits(t).name;
  if (x16) {
    std::vector<uint8_t> src = w.bytes;
    for (int64_t gi = 0; gi < rows / kernels::kX16Rows; ++gi)
      kernels::interleave_x16(t, src.data() + rs * kernels::kX16Rows * gi, rs, k,
                              w.bytes.data() + rs * kernels::kX16Rows * gi);
  }
  w.tensor.name = "w";
  w.tensor.type = t;
  w.tensor.n_dims = 2;
  w.tensor.ne[0] = k;
  w.tensor.ne[1] = rows;
  w.tensor.data = w.bytes.data();
  w.tensor.nbytes = w.bytes.size();
  w.tensor.interleaved_x16 = x16;
  return w;
}

// Compares, for every runnable path, type and layout (x16 where the path has a decode GEMV for the type), each
// token of batches of 2..17 with the same token alone; `only_x16_batch_gemms` restricts it to the x16 weights
// whose path has an x16 batch GEMM (the ones matmul runs as a batch even under ScopedBatchInvariance).
int compare_batches_with_single_tokens(bool only_x16_batch_gemms) {
  PathGuard guard;
  ThreadPool pool(2);
  std::vector<uint8_t> scratch;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  int compared = 0;
  for (const kernels::KernelTable* path : kernels::runnable_tables()) {
    EXPECT_TRUE(kernels::force_path_for_tests(path->name).ok());
    for (GgmlType t : types_with_kernels()) {
      const int64_t k = 512, rows = 48;
      for (bool x16 : {false, true}) {
        if (x16 && !(kernels::has_x16_layout(t) && kernels::gemv_x16_for(t) != nullptr)) continue;
        if (only_x16_batch_gemms && !(x16 && kernels::gemm_x16_for(t) != nullptr)) continue;
        const Weights w = make(t, k, rows, x16, rng);
        for (int64_t n : {2, 3, 5, 6, 9, 17}) {
          std::vector<float> x(static_cast<size_t>(k * n));
          for (float& v : x) v = g(rng);
          std::vector<float> batch(static_cast<size_t>(rows * n)), one(static_cast<size_t>(rows));
          matmul(w.tensor, x.data(), n, batch.data(), pool, scratch);
          for (int64_t tok = 0; tok < n; ++tok) {
            matmul(w.tensor, x.data() + tok * k, 1, one.data(), pool, scratch);
            EXPECT_EQ(std::memcmp(one.data(), batch.data() + tok * rows, one.size() * sizeof(float)), 0)
                << path->name << " " << type_traits(t).name << (x16 ? " x16" : " rows") << ": token " << tok
                << " of a batch of " << n << " differs from its single-token product (first row: " << one[0] << " vs "
                << batch[static_cast<size_t>(tok * rows)] << ")";
            ++compared;
          }
        }
      }
    }
  }
  return compared;
}

// The x16 batch GEMMs (decode layouts, kernels/x86/gemv_x16*.h) sum each column exactly as the x16 GEMV does:
// integer sums per block, then one FMA per block in block order.
TEST(BatchInvariance, X16BatchGemmsSumAsTheirGemvs) {
  EXPECT_GT(compare_batches_with_single_tokens(/*only_x16_batch_gemms=*/true), 0);
}

// Under ScopedBatchInvariance every weight, in either layout, on every path gives each token its decode
// step's bits (without it, AVX-512's row-layout GEMVs and its tiles or packed GEMMs sum in other orders).
TEST(BatchInvariance, UnderTheScopeEveryTokenMatchesItsDecodeStep) {
  ScopedBatchInvariance scope;
  EXPECT_GT(compare_batches_with_single_tokens(/*only_x16_batch_gemms=*/false), 100);
}

// The scope ends with its object and nests.
TEST(BatchInvariance, ScopeNestsAndEnds) {
  PathGuard guard;
  ThreadPool pool(1);
  std::vector<uint8_t> scratch;
  std::mt19937 rng(3);
  const kernels::KernelTable* best = kernels::runnable_tables().front();
  ASSERT_TRUE(kernels::force_path_for_tests(best->name).ok());
  // A row-layout weight: the one-token product and the batch differ on a path with separate kernels for them.
  const Weights w = make(GgmlType::Q4_0, 512, 16, false, rng);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(512 * 6), batch(16 * 6), one(16);
  for (float& v : x) v = g(rng);
  const auto token5_matches = [&] {
    matmul(w.tensor, x.data(), 6, batch.data(), pool, scratch);
    matmul(w.tensor, x.data() + 5 * 512, 1, one.data(), pool, scratch);
    return std::memcmp(one.data(), batch.data() + 5 * 16, sizeof(float) * 16) == 0;
  };
  {
    ScopedBatchInvariance outer;
    {
      ScopedBatchInvariance inner;
      EXPECT_TRUE(token5_matches());
    }
    EXPECT_TRUE(token5_matches());
  }
  if (std::string(best->name) == "avx512") {
    EXPECT_FALSE(token5_matches()) << "the scope outlived its object";
  }
}

}  // namespace
}  // namespace pocketlm
