#pragma once
// Conformance of a kernel path against the scalar reference, with no test-framework dependency, so the same
// checks run in the GoogleTest suite (x86, natively) and in the standalone runner the ARM build executes
// under qemu-aarch64 (tests/kernels/arm_conformance_main.cpp).
//
// What is checked, per weight type the path implements:
//   exact:       scales set to 1 and small quants, so every partial sum is an integer below 2^24: the path
//                must equal the reference bit for bit (the integer dot products are exact);
//   random:      random valid blocks (finite f16 scales) against q8 activations of random floats: within
//                a relative tolerance of the sum of |w_i * a_i| (float summation order differs);
//   adversarial: all-zero blocks (result exactly 0), the largest f16 scales (finite results stay within
//                tolerance), NaN/Inf scales (a non-finite reference must give a non-finite result: they
//                propagate, never turn into a finite number);
//   shapes:      row counts and column counts that are not multiples of the tile (1..13 x 1..9), and k from
//                one block to many.
#include <string>
#include <vector>

#include "kernels/kernel_table.h"

namespace pocketlm::kernels::testing {

struct ConformanceReport {
  int checks = 0;                     // outputs compared
  std::vector<std::string> failures;  // one line per mismatch (capped)
};

// Runs every check for every type `path` implements (check_kv_rows included); deterministic for a seed.
ConformanceReport check_path(const KernelTable& path, unsigned seed = 1234);

// The quantized KV row kernels (kv_gemm, kv_weighted_rows for q8 and q4) against the scalar reference
// (ref/kv_rows.h): K . Q scores bit for bit (rows x queries 1..33 x 1..70, head_dim 8..256, quantized rows,
// raw quant bytes, zero rows, the largest and non-finite scales); P . V within kRelTolerance of
// sum_j p_j |v_j[i]| (head_dim 32..256, masked p = 0 entries, 1..300 rows).
ConformanceReport check_kv_rows(const KernelTable& path, unsigned seed = 1234);

// Relative tolerance used for the float checks (documented in docs/kernels.md).
inline constexpr double kRelTolerance = 2e-5;

}  // namespace pocketlm::kernels::testing
