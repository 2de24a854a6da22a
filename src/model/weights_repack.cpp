#include "model/weights_repack.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "kernels/dispatch.h"
#include "kernels/interleave.h"

namespace pocketlm {

std::string RepackedWeights::summary() const {
  if (tensors_.empty()) return "mapped";
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "mapped; %.1f MiB of %d tensors in the x16 decode layout%s, their mapped pages released",
                static_cast<double>(bytes_) / 1048576.0, count(), arena_.advised() ? " (huge pages)" : "");
  return buf;
}

namespace {
// Whether the active path keeps `t` in the x16 layout.
bool repackable(const GgufTensor* t) {
  return t != nullptr && !t->interleaved_x16 && kernels::has_x16_layout(t->type) &&
         kernels::gemv_x16_for(t->type) != nullptr && t->n_rows() % kernels::kX16Rows == 0;
}
// The decode matrices, in load order (output last): attention and FFN projections, and the output head.
template <class W, class F>
void for_each_matrix(W& w, F&& f) {
  for (auto& L : w.layers)
    for (auto* t : {&L.wqkv, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) f(*t);
  f(w.output);
}
}  // namespace

std::vector<const GgufTensor*> RepackedWeights::candidates(const ModelWeights& w) {
  std::vector<const GgufTensor*> out;
  for_each_matrix(w, [&](const GgufTensor* t) {
    if (repackable(t) && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  });
  return out;
}

void RepackedWeights::repack(const GgufFile& f, ModelWeights& w) {
  // One huge-page arena for every copy (util/huge_pages.h): decode streams all of it once per token.
  size_t total = 0;
  for (const GgufTensor* t : candidates(w)) total += (t->nbytes + 63) / 64 * 64;
  if (total == 0) return;
  arena_ = HugePageBuffer(total);
  if (arena_.data() == nullptr) return;  // out of memory: the mapped layout still works
  size_t used = 0;
  std::map<const GgufTensor*, const GgufTensor*> done;  // tied embeddings: one copy for both uses
  auto convert = [&](const GgufTensor*& t) {
    if (t == nullptr || t->interleaved_x16) return;
    if (auto it = done.find(t); it != done.end()) {
      t = it->second;
      return;
    }
    if (!repackable(t)) return;
    const int64_t rows = t->n_rows(), k = t->ne[0];
    const size_t row_bytes = row_size(t->type, k), group_bytes = row_bytes * kernels::kX16Rows;
    uint8_t* p = arena_.data() + used;
    used += (t->nbytes + 63) / 64 * 64;
    // Group by group, releasing what has been copied, so the peak stays one group above the final size.
    for (int64_t g = 0; g < rows / kernels::kX16Rows; ++g) {
      const uint8_t* src = t->data + static_cast<size_t>(g) * group_bytes;
      kernels::interleave_x16(t->type, src, row_bytes, k, p + static_cast<size_t>(g) * group_bytes);
      f.mapped()->release(src, group_bytes);
    }
    f.mapped()->release(t->data, t->nbytes);  // the partial pages at the group edges
    auto copy = std::make_unique<GgufTensor>(*t);
    copy->data = p;
    copy->interleaved_x16 = true;
    done[t] = copy.get();
    t = copy.get();
    tensors_.push_back(std::move(copy));
    bytes_ += t->nbytes;
  };
  for_each_matrix(w, convert);
  if (auto it = done.find(w.token_embd); it != done.end()) w.token_embd = it->second;  // tied: rows read by get_row
}

}  // namespace pocketlm
