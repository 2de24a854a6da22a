#include "kernels/dispatch.h"

#include <atomic>
#include <cstdlib>

#include "util/cpu_features.h"

namespace pocketlm::kernels {
namespace {

bool can_run(const KernelTable* t) {
  if (t == nullptr) return false;
  const CpuFeatures& f = cpu_features();
  const std::string name = t->name;
  if (name == "scalar") return true;
  if (name == "avx2") return f.avx2 && f.fma && f.f16c;
  if (name == "avx512") return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
  if (name == "neon") return f.neon;
  if (name == "dotprod") return f.neon && f.dotprod;
  if (name == "i8mm") return f.neon && f.dotprod && f.i8mm;
  return false;
}

// The path POCKETLM_ISA names, or the best runnable one. A name this binary or CPU cannot run leaves the best
// path active and is kept as an error (isa_override_status): loading a model reports it; nothing aborts.
struct Picked {
  const KernelTable* table = nullptr;
  Status status;
};

Picked pick() {
  Picked p;
  p.table = runnable_tables().front();
  const char* forced = std::getenv("POCKETLM_ISA");
  if (forced != nullptr && forced[0] != '\0') {
    auto t = table_by_name(forced);
    if (t)
      p.table = *t;
    else
      p.status = Error("POCKETLM_ISA: " + t.error().message());
  }
  return p;
}

const Picked& picked() {
  static const Picked p = pick();
  return p;
}

}  // namespace

#if !defined(POCKETLM_KERNELS_X86)
const KernelTable* avx2_table() { return nullptr; }
const KernelTable* avx512_table() { return nullptr; }
#endif
#if !defined(POCKETLM_KERNELS_ARM)
const KernelTable* neon_table() { return nullptr; }
const KernelTable* dotprod_table() { return nullptr; }
const KernelTable* i8mm_table() { return nullptr; }
#endif

std::vector<const KernelTable*> runnable_tables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : {avx512_table(), avx2_table(), i8mm_table(), dotprod_table(), neon_table()})
    if (can_run(t)) out.push_back(t);
  out.push_back(scalar_table());
  return out;
}

Expected<const KernelTable*> table_by_name(const std::string& name) {
  std::string known;
  for (const KernelTable* t : runnable_tables()) {
    if (name == t->name) return t;
    known += known.empty() ? "" : ", ";
    known += t->name;
  }
  return Error("kernel path '" + name + "' is not built in or this CPU cannot run it (runnable here: " + known + ")");
}

namespace {
std::atomic<const KernelTable*>& active_slot() {
  static std::atomic<const KernelTable*> table{picked().table};
  return table;
}
}  // namespace

const KernelTable& active_table() { return *active_slot().load(std::memory_order_relaxed); }

Status isa_override_status() { return picked().status; }

Status force_path_for_tests(const std::string& name) {
  PLM_TRY(const KernelTable* t, table_by_name(name));
  active_slot().store(t, std::memory_order_relaxed);
  return {};
}

GemmFn gemm_for(GgmlType weight_type) {
  if (GemmFn f = active_table().find(weight_type)) return f;
  return scalar_table()->find(weight_type);
}

GemmFn packed_gemm_for(GgmlType weight_type) { return active_table().find_packed(weight_type); }

GemvX16Fn gemv_x16_for(GgmlType weight_type) { return active_table().find_x16(weight_type); }

GemmX16Fn gemm_x16_for(GgmlType weight_type) { return active_table().find_gemm_x16(weight_type); }

OutlierGemmFn outlier_gemm_for() {
  const OutlierGemmFn f = active_table().outlier_gemm;
  return f != nullptr ? f : scalar_table()->outlier_gemm;
}

}  // namespace pocketlm::kernels

// These textual includes build on each other: keep their order.
// clang-format off
#include "kernels/ref/kv_rows.h"
#include "kernels/ref/vec_dot.h"
// clang-format on

namespace pocketlm::kernels {
void quantize_activation_row(GgmlType act_type, const float* x, void* dst, int64_t n) {
  if (QuantizeFn f = active_table().find_quantize(act_type)) return f(x, dst, n);
  quantize_activations(act_type, x, dst, n);
}

ScaledSoftmaxFn scaled_softmax_for() {
  const ScaledSoftmaxFn f = active_table().scaled_softmax;
  return f != nullptr ? f : scalar_table()->scaled_softmax;
}

WeightedRowsFn weighted_rows_for(bool f16) {
  const KernelTable& t = active_table();
  WeightedRowsFn f = f16 ? t.weighted_rows_f16 : t.weighted_rows_f32;
  if (f == nullptr) f = f16 ? scalar_table()->weighted_rows_f16 : scalar_table()->weighted_rows_f32;
  return f;
}

namespace {
int kv_row_index(KvType t) { return t == KvType::Q8 ? kKvRowQ8 : t == KvType::Q4 ? kKvRowQ4 : -1; }
}  // namespace

GemmFn kv_gemm_for(KvType t) {
  const int i = kv_row_index(t);
  if (i < 0) return nullptr;
  if (GemmFn f = active_table().kv_gemm[i]) return f;
  return scalar_table()->kv_gemm[i];
}

WeightedRowsFn kv_weighted_rows_for(KvType t) {
  const int i = kv_row_index(t);
  if (i < 0) return nullptr;
  if (WeightedRowsFn f = active_table().kv_weighted_rows[i]) return f;
  return scalar_table()->kv_weighted_rows[i];
}

void quantize_kv_row(KvType t, const float* x, uint8_t* dst, int64_t head_dim) {
  ref::quantize_kv_row(t, x, dst, head_dim);
}
}  // namespace pocketlm::kernels
