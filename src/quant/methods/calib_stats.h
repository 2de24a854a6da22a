#pragma once
// Calibration statistics for the quantization methods that see the activations (quant/methods/): the model
// runs over calibration tokens while a CalibCollector watches every layer matmul's f32 input
// (kernels/matmul.h's MatmulObserver) and records, per distinct input (Q, K and V read one; gate and up
// read one):
//   - sum |x_j| and max |x_j| per channel (AWQ's mean|x|, SmoothQuant's max|x|),
//   - sum x_j^2 per channel (an importance matrix, as `pocketlm imatrix` collects it),
//   - the Gram matrix sum x x^T (GPTQ's Hessian is 2 X X^T; AWQ's search measures output error with it).
// Statistics are cached on disk (write_calib_stats, atomic) with the fingerprint of the model they came from
// and of the calibration tokens, so a second recipe on the same model and data reads them back instead of
// running the model again; a cache made from another model is an error.
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/matmul.h"
#include "quant/imatrix.h"
#include "util/error.h"

namespace pocketlm {

class GgufFile;
class Session;
class ThreadPool;

struct InputStats {
  std::string key;              // the first weight that reads this input, e.g. "blk.0.attn_q.weight"
  int64_t n = 0;                // channels (the weights' row length)
  int64_t count = 0;            // tokens seen
  std::vector<double> abs_sum;  // n: sum |x_j|
  std::vector<float> abs_max;   // n: max |x_j|
  std::vector<double> sq_sum;   // n: sum x_j^2
  std::vector<float> gram;      // n * n: sum x x^T (symmetric, row-major); empty when not collected

  double mean_abs(int64_t j) const {
    return count > 0 ? abs_sum[static_cast<size_t>(j)] / static_cast<double>(count) : 0.0;
  }
  double mean_sq(int64_t j) const {
    return count > 0 ? sq_sum[static_cast<size_t>(j)] / static_cast<double>(count) : 0.0;
  }
};

struct CalibStats {
  std::string model_id;   // model_fingerprint() of the model that produced them
  std::string data_id;    // tokens_fingerprint() of the calibration sequences
  std::string data_name;  // what the data was ("wiki.train.raw: 8 chunks of 512 tokens"), for messages and metadata
  int64_t n_tokens = 0;
  std::vector<InputStats> inputs;
  std::map<std::string, int64_t> weight_input;  // weight name -> index into inputs

  const InputStats* find(std::string_view weight) const;
  // The statistics as an importance matrix (sum x^2 and token count per weight): what `--method imatrix`
  // quantizes with.
  Imatrix to_imatrix() const;
};

struct CalibCollectOptions {
  bool gram = true;         // collect X X^T (GPTQ, AWQ); off: only the per-channel sums
  int64_t min_tokens = 16;  // ignore products over fewer rows (single-token decoding)
};

class CalibCollector final : public MatmulObserver {
 public:
  explicit CalibCollector(CalibCollectOptions opts = {});
  void observe(const GgufTensor& w, int64_t row_begin, int64_t row_end, const float* x, int64_t n_tokens) override;
  // Adds the inputs seen since the last flush into the statistics (the Gram updates, split over `pool`).
  // collect_calib_stats calls it after every forward call.
  void flush(ThreadPool& pool);
  const std::string& problem() const { return problem_; }
  // The statistics (Gram matrices made symmetric); model_id / data_id / data_name are the caller's.
  CalibStats result() const;

 private:
  struct Pending {
    int64_t input;
    int64_t n_tokens;
    std::vector<float> x;
  };
  CalibCollectOptions opts_;
  std::vector<InputStats> inputs_;
  std::map<std::string, int64_t> weight_input_;
  std::vector<Pending> pending_;
  const float* last_x_ = nullptr;  // the previous observed product's input: the next weight with the same
  int64_t last_tokens_ = 0;        // pointer, token count and width reads the same input (matmul_many)
  int64_t last_input_ = -1;
  std::string problem_;
};

// Runs each sequence through `session` from an empty cache in forward calls of at most n_batch tokens, with
// `collector` observing every product and flushed after each call. A non-finite activation is an error.
Status collect_calib_stats(Session& session, std::span<const std::vector<int32_t>> sequences, int64_t n_batch,
                           CalibCollector& collector, ThreadPool& pool,
                           const std::function<void(int64_t)>& tokens_done = {});

// 16 hex digits identifying a model by its tensors (names, types, shapes and a sample of each one's bytes) and
// size: the same file gives the same id wherever it lies; another model (or a re-quantized one) another id.
std::string model_fingerprint(const GgufFile& model);
// 16 hex digits identifying calibration sequences (their tokens and cut).
std::string tokens_fingerprint(std::span<const std::vector<int32_t>> sequences);

// The cache file: "PLMCALIB", version, the ids and name, then each input's statistics (the Gram matrix's
// upper triangle) and the weight -> input map. Written atomically.
Status write_calib_stats(const CalibStats& s, const std::string& path);
Expected<CalibStats> read_calib_stats(const std::string& path);
Expected<CalibStats> parse_calib_stats(std::span<const uint8_t> bytes, const std::string& name);

// Whether a cache read from `path` belongs to this model and data: a cache made from another model is an error
// naming both ids; a cache for other calibration data too (pass another --calib-cache or delete it).
Status check_calib_stats(const CalibStats& s, const std::string& model_id, const std::string& data_id,
                         const std::string& path);

// The default cache file for a model and data: $POCKETLM_CACHE_DIR, else $XDG_CACHE_HOME/pocketlm, else
// ~/.cache/pocketlm; then calib/<model_id>-<data_id>.calib.
std::string default_calib_cache_path(const std::string& model_id, const std::string& data_id);

}  // namespace pocketlm
