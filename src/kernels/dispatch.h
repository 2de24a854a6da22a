#pragma once
// Picks the kernel path once, at first use, from the CPU's features: on x86 avx512 (F+BW+VL+VNNI) > avx2
// (+FMA+F16C) > scalar; on ARM i8mm > dotprod > neon. The environment variable POCKETLM_ISA=name forces a
// path (for tests and benchmarks); naming a path this CPU cannot run, or one not built in, is an error.
#include <string>
#include <vector>

#include "formats/kv_types.h"
#include "kernels/kernel_table.h"
#include "util/error.h"

namespace pocketlm::kernels {

// The paths this binary has and this CPU can run, best first (the scalar path is always last).
std::vector<const KernelTable*> runnable_tables();

// The path in use (best runnable, or POCKETLM_ISA's). An invalid POCKETLM_ISA leaves the best path active.
const KernelTable& active_table();
// The error of an invalid POCKETLM_ISA ("POCKETLM_ISA: kernel path 'x' is not built in or ..."), or Ok.
// Model::load returns it, so a client gets an error, not a process abort.
Status isa_override_status();

// Tests only (they compare paths in one process): switches the path of the whole process. The library never
// calls it, so models and sessions in one process always share the one path picked at start-up; calling it
// while kernels run on other threads mixes paths within a step (each switch is atomic, so nothing worse).
// Errors like table_by_name.
Status force_path_for_tests(const std::string& name);

// Looks a runnable path up by name.
Expected<const KernelTable*> table_by_name(const std::string& name);

// The GEMM for a weight type: the active path's, or the scalar one where the path has none.
GemmFn gemm_for(GgmlType weight_type);

// The active path's GEMM over packed activations (kernels/packed_acts.h) for a weight type, or nullptr.
GemmFn packed_gemm_for(GgmlType weight_type);

// The active path's decode GEMV over row-interleaved weights (kernels/interleave.h) for a weight type, or
// nullptr when it has none (model loading then keeps the type's tensors in their GGUF layout).
GemvX16Fn gemv_x16_for(GgmlType weight_type);
// Its batch GEMM over the same groups, or nullptr (batches then de-interleave a band for the row kernels).
GemmX16Fn gemm_x16_for(GgmlType weight_type);

// The active path's outlier-branch side product (kernel_table.h OutlierGemmFn); the scalar one where it has none.
OutlierGemmFn outlier_gemm_for();

// Quantizes an activation row with the active path (scalar where it has none); bit-exact either way.
void quantize_activation_row(GgmlType act_type, const float* x, void* dst, int64_t n);

// The active path's weighted-rows kernel for f32 or f16 rows.
WeightedRowsFn weighted_rows_for(bool f16);

// The active path's attention softmax (kernel_table.h's ScaledSoftmaxFn), or the scalar one.
ScaledSoftmaxFn scaled_softmax_for();

// Quantized KV cache rows (formats/kv_types.h, kernels/ref/kv_rows.h): the active path's K . Q GEMM for K
// rows of type t against queries quantized as q8 rows (quantize_kv_row(KvType::Q8, ...)), and its P . V over
// V rows of type t; the scalar ones where the path has none. t must be Q8 or Q4 (nullptr otherwise: f32/f16
// rows use gemm_for / weighted_rows_for). K . Q scores are bit-identical on every path.
GemmFn kv_gemm_for(KvType t);
WeightedRowsFn kv_weighted_rows_for(KvType t);

// Quantizes head_dim floats into one q8 or q4 KV row (kv_row_bytes(t, head_dim) bytes at dst); the same
// bytes on every path. q4 needs head_dim a multiple of 32.
void quantize_kv_row(KvType t, const float* x, uint8_t* dst, int64_t head_dim);

}  // namespace pocketlm::kernels
