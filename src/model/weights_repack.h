#pragma once
// Decode layouts made at load: the matrices a decode step streams (attention, FFN and output projections)
// are copied into the row-interleaved x16 layout (kernels/interleave.h) when the active kernel path has a
// GEMV for their type, and the mapped pages they came from are released, so weights are not held twice.
// ModelWeights is re-pointed at the copies; the GgufFile's own tensor table is left as the file has it. The
// copies live in one arena on transparent huge pages (util/huge_pages.h).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/weights.h"
#include "util/huge_pages.h"

namespace pocketlm {

class RepackedWeights {
 public:
  // The decode matrices of `w` that repack() would copy on the active kernel path (distinct tensors: tied
  // embeddings once), without touching their data.
  static std::vector<const GgufTensor*> candidates(const ModelWeights& w);

  // Repacks what the active path can use and re-points `w` at the copies. Tensors whose rows are not a
  // multiple of 16, or whose type has no x16 GEMV on this path, stay mapped.
  void repack(const GgufFile& f, ModelWeights& w);

  int count() const { return static_cast<int>(tensors_.size()); }
  size_t bytes() const { return bytes_; }  // anonymous memory held (equal to the mapped bytes released)
  // For memory reports: "mapped" or "mapped; 612.0 MiB of 112 tensors in the x16 decode layout, their mapped
  // pages released".
  std::string summary() const;

 private:
  std::vector<std::unique_ptr<GgufTensor>> tensors_;
  HugePageBuffer arena_;  // every copy, 64-byte aligned, in load order
  size_t bytes_ = 0;
};

}  // namespace pocketlm
