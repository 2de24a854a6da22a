#include "runtime/speculative/self_draft.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "formats/dequantize.h"
#include "formats/legacy.h"
#include "formats/quantize.h"
#include "gguf/writer.h"
#include "kernels/ref/vec_dot.h"
#include "util/thread_pool.h"

namespace pocketlm {

GgmlType self_draft_row_type(GgmlType type, int64_t n) {
  if (n % type_traits(type).block_size == 0) return type;
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K: return GgmlType::Q4_0;
    case GgmlType::Q5_K: return GgmlType::Q5_1;
    case GgmlType::Q6_K: return GgmlType::Q8_0;
    default: return type;
  }
}

namespace {

// The layer index of a "blk.N." tensor, -1 for the others.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::strtoll(name.c_str() + 4, nullptr, 10);
}

bool is_matrix(const GgufTensor& t) { return t.n_dims >= 2 && t.ne[1] > 1; }

}  // namespace

Expected<std::unique_ptr<Model>> make_self_draft(const Model& target, const SelfDraftOptions& o, ThreadPool* pool) {
  const std::string tname(type_traits(o.type).name);
  const GgufFile& src = target.gguf();
  if (!can_quantize(o.type) || !has_vec_dot(o.type))
    return Error("self-draft type " + tname + ": pocketlm cannot encode weights to it or compute with it");
  const int64_t n_layer = target.config().n_layer;
  if (o.n_layers < 0 || o.n_layers > n_layer)
    return Error("self-draft layers " + std::to_string(o.n_layers) + ": the target " + src.path() + " has " +
                 std::to_string(n_layer) + " layers");
  const int64_t keep_layers = o.n_layers > 0 ? o.n_layers : n_layer;

  GgufWriter w;
  w.set_alignment(src.alignment());
  PLM_TRY(std::string arch, src.get_string("general.architecture"));
  for (const auto& [key, value] : src.metadata()) w.set(key, value);
  w.set(arch + ".block_count", GgufValue::of_u32(static_cast<uint32_t>(keep_layers)));
  w.set("general.name", GgufValue::of_string("self-draft " + tname + " of " + src.path()));

  size_t draft_bytes = 0, target_bytes = 0;
  for (const GgufTensor& t : src.tensors()) {
    target_bytes += t.nbytes;
    if (layer_of(t.name) >= keep_layers) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    const GgmlType to = is_matrix(t) ? self_draft_row_type(o.type, t.ne[0]) : t.type;
    if (to == t.type || !type_traits(t.type).can_dequantize || t.ne[0] % type_traits(to).block_size != 0) {
      PLM_CHECK(w.add_tensor(t.name, t.type, ne, std::span<const uint8_t>(t.data, t.nbytes)));
      draft_bytes += t.nbytes;
      continue;
    }
    const int64_t rows = t.n_rows(), k = t.ne[0];
    const size_t out_bytes = static_cast<size_t>(rows) * row_size(to, k);
    draft_bytes += out_bytes;
    const GgufTensor* tp = &t;
    PLM_CHECK(w.add_tensor_lazy(t.name, to, ne,
                                [&src, tp, to, rows, k, out_bytes, pool](std::vector<uint8_t>& out) -> Status {
                                  out.resize(out_bytes);
                                  const size_t in_row = row_size(tp->type, k), out_row = row_size(to, k);
                                  // Row by row (decode, encode), so the float copy is one row per thread, not the whole
                                  // tensor.
                                  auto encode = [&](int64_t r0, int64_t r1, int) {
                                    std::vector<float> f(static_cast<size_t>(k));
                                    for (int64_t r = r0; r < r1; ++r) {
                                      dequantize_row(tp->type, tp->data + static_cast<size_t>(r) * in_row, f.data(), k);
                                      uint8_t* dst = out.data() + static_cast<size_t>(r) * out_row;
                                      // The 32-value types round to nearest (llama-quantize's plain rounding): the
                                      // search would take much longer at load.
                                      quantize_row(to, f.data(), dst, k, nullptr, QuantSearch::nearest);
                                    }
                                  };
                                  if (pool)
                                    pool->parallel_for(rows, encode);
                                  else
                                    encode(0, rows, 0);
                                  // The target's pages read here go back to the file: the target either holds this
                                  // tensor in its decode layout already or faults the pages in again when it reads
                                  // them.
                                  src.mapped()->release(tp->data, tp->nbytes);
                                  return Status::Ok();
                                }));
  }
  if (draft_bytes >= target_bytes)
    return Error("self-draft " + tname + " of " + src.path() + " would be " + std::to_string(draft_bytes >> 20) +
                 " MiB, no smaller than the target (" + std::to_string(target_bytes >> 20) +
                 " MiB): a draft must be cheaper to run than the target");
  PLM_TRY(std::vector<uint8_t> image, w.to_bytes());
  auto mapped = MappedFile::from_bytes(image, src.path() + " (self-draft " + tname + ")");
  image = {};
  PLM_TRY(GgufFile file, GgufFile::parse(std::move(mapped)));
  return Model::load(std::move(file), o.load);
}

}  // namespace pocketlm
