#pragma once
// TEMPORARY until the kvkern branch lands (its dispatch.h declares these).
#include <cstdint>
#include "kernels/kernel_table.h"
#include "runtime/kv_types.h"
namespace pocketlm::kernels {
void quantize_kv_row(KvType t, const float* x, uint8_t* dst, int64_t head_dim);
void dequantize_kv_row(KvType t, const uint8_t* src, float* out, int64_t head_dim);
GemmFn kv_gemm_for(KvType t);
WeightedRowsFn kv_weighted_rows_for(KvType t);
}
