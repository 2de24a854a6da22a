#pragma once
// Importance matrices ("imatrix"): for every matmul weight, the per-input-column sum of squared activations
// over calibration tokens, and the token count. The quantizer's search weights each column by the mean
// (sum / count). File formats, as llama.cpp's llama-imatrix writes them:
//   GGUF (current): general.type = "imatrix"; imatrix.datasets (string array), imatrix.chunk_count (u32),
//     imatrix.chunk_size (u32); per weight W two F32 tensors: "W.in_sum2" of shape [n_cols, n_mat] (raw sums)
//     and "W.counts" of shape [1, n_mat] (tokens per matrix; n_mat > 1 only for stacked experts).
//   legacy .dat: i32 n_entries; per entry: i32 name length, name bytes, i32 ncall, i32 nval, nval f32 values
//     (= sum / count * ncall); then optionally i32 chunk count, i32 dataset-name length, dataset bytes.
// The legacy values are means scaled by the chunk count; reading them, pocketlm converts to raw sums and
// counts by multiplying both by a chunk size (llama.cpp does the same, with its -c), so one representation
// serves both formats.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace pocketlm {

class GgufFile;

struct ImatrixEntry {
  std::string name;           // the weight's tensor name, e.g. "blk.0.attn_q.weight"
  int64_t n_cols = 0;         // input columns (the weight's row length)
  int64_t n_mat = 1;          // matrices (experts) sharing the entry
  std::vector<float> sums;    // n_mat * n_cols sums of squared activations
  std::vector<float> counts;  // n_mat token counts

  // Mean squared activation of each column of matrix `mat` (n_cols values): the quantizer's importance.
  // A matrix that saw no tokens gets 1 for every column (no preference), as llama.cpp does.
  std::vector<float> importance(int64_t mat = 0) const;
};

struct Imatrix {
  std::vector<ImatrixEntry> entries;  // sorted by name
  std::vector<std::string> datasets;  // calibration files it was computed from
  int64_t chunk_count = 0;
  int64_t chunk_size = 0;
  bool from_legacy = false;  // read from a .dat file

  const ImatrixEntry* find(std::string_view name) const;
};

inline constexpr int64_t kImatrixDefaultChunkSize = 512;  // llama-imatrix's default context

// Reads either format (GGUF by its magic, else legacy .dat). `legacy_chunk_size` converts a .dat's scaled
// means back to sums and counts. Errors name the file, the entry/tensor and (for .dat) the byte offset.
Expected<Imatrix> read_imatrix(const std::string& path, int64_t legacy_chunk_size = kImatrixDefaultChunkSize);
// From bytes in memory (fuzzing, tests); `name` is used in error messages.
Expected<Imatrix> parse_imatrix(std::span<const uint8_t> bytes, const std::string& name,
                                int64_t legacy_chunk_size = kImatrixDefaultChunkSize);

// Writes atomically (temp file + rename): the GGUF format, or the legacy .dat.
Status write_imatrix_gguf(const Imatrix& im, const std::string& path);
Status write_imatrix_dat(const Imatrix& im, const std::string& path);

// Adds several imatrices: sums and counts add per entry; an entry in only some files is kept as it is.
// Entries of the same name must have the same shape (else an error naming it and both files' shapes).
// `names` labels the inputs in errors (e.g. their paths).
Expected<Imatrix> merge_imatrices(const std::vector<Imatrix>& inputs, const std::vector<std::string>& names);

// Checks an imatrix against a model: every entry must name a tensor of the model whose row length equals
// its n_cols and whose third dimension (experts) equals its n_mat (1 for 2-D weights). The first mismatch
// is the error. Model weights without an entry are allowed (they are quantized without importance).
Status validate_imatrix(const Imatrix& im, const GgufFile& model);

// Per-tensor statistics of the mean squared activations (sum / count per column), as llama-imatrix's
// --show-statistics reports them.
struct ImatrixTensorStats {
  std::string name;
  int64_t n = 0;  // columns with data (over all matrices)
  double sum = 0, mean = 0, min = 0, max = 0, stddev = 0;
  double cv = 0;             // coefficient of variation: stddev / mean (0 when the mean is 0)
  int64_t zero_columns = 0;  // columns whose mean is <= 1e-5 (never or barely activated)
  double active = 0;         // 1 - zero_columns / n
  double entropy = 0;        // of the columns' share of the sum, in bits
  double zd = 0;             // fraction of columns more than one stddev above the mean
  double cossim = 0;         // cosine similarity with the same tensor one layer earlier (0 when none)
  bool has_cossim = false;
};
std::vector<ImatrixTensorStats> imatrix_statistics(const Imatrix& im);
std::string format_imatrix_statistics(const Imatrix& im, const std::vector<ImatrixTensorStats>& stats);

}  // namespace pocketlm
